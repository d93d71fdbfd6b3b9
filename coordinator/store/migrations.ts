// The PostgreSQL schema, as plain SQL migrations numbered from 1. postgres-store.ts applies the
// ones a database lacks in one transaction under an advisory transaction lock, so coordinators
// starting together migrate once; schema_migrations records each version applied. A database
// at a higher version than SCHEMA_VERSION was migrated by a newer coordinator: an older one
// refuses to start on it (STORE_SCHEMA_TOO_NEW) rather than write rows it does not understand.
//
// Rules for a new migration: append, never edit one that has shipped; keep it additive while
// coordinators of the previous version may still run against the same database (a rolling
// upgrade: the old leader keeps writing until the new one takes over).
//
// The SQL is kept here as text rather than in .sql files: the build (tsc) copies only .ts
// output into dist/, and a migration that is not shipped with the code that needs it is the
// failure this avoids.

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'coordinator state',
    sql: `
-- One row: the leader epoch. A new leader bumps it (UPDATE ... RETURNING); every state write
-- first reads it FOR SHARE and gives up when it is not the writer's, so a deposed leader's
-- write either lands before the new leader's claim or not at all.
CREATE TABLE coordinator_epoch (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  epoch bigint NOT NULL,
  coordinator_id text NOT NULL,
  claimed_at timestamptz
);
INSERT INTO coordinator_epoch (epoch, coordinator_id) VALUES (0, '');

CREATE TABLE apps (
  name text PRIMARY KEY,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- What formations of an app ran: slug, env, stack, signature and release name, numbered per app.
CREATE TABLE releases (
  app text NOT NULL REFERENCES apps (name),
  version integer NOT NULL,
  release text,
  slug_url text NOT NULL,
  slug_sha256 text NOT NULL,
  slug_signature text,
  env jsonb NOT NULL,
  stack text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (app, version)
);

CREATE TABLE formations (
  app text NOT NULL REFERENCES apps (name),
  type text NOT NULL,
  quantity integer NOT NULL CHECK (quantity >= 0),
  size jsonb NOT NULL,
  command text NOT NULL,
  release_version integer NOT NULL,
  spec_key text NOT NULL,
  PRIMARY KEY (app, type),
  FOREIGN KEY (app, release_version) REFERENCES releases (app, version)
);

-- Desired dynos with their placement and last reported state. The columns are what is looked
-- up by; doc holds the whole record (endpoint, exit, reason...).
CREATE TABLE dynos (
  id text PRIMARY KEY,
  app text NOT NULL,
  type text NOT NULL,
  agent_id text NOT NULL,
  desired text NOT NULL CHECK (desired IN ('run', 'stop')),
  state text NOT NULL,
  doc jsonb NOT NULL
);
CREATE INDEX dynos_by_app ON dynos (app, type);
CREATE INDEX dynos_by_agent ON dynos (agent_id);

-- Each agent's last hello (identity) and capacity report, with its EC2 notices.
CREATE TABLE agents (
  id text PRIMARY KEY,
  doc jsonb NOT NULL,
  seen_at timestamptz NOT NULL
);

-- The event de-duplication ledger: the last event sequence number acknowledged per agent and
-- sequence epoch. An event is acknowledged only once this row (and the event's effects) are
-- committed, so a new leader neither loses nor applies twice what the old one acknowledged.
CREATE TABLE agent_ledger (
  agent_id text PRIMARY KEY,
  seq_epoch text NOT NULL,
  last_seq bigint NOT NULL CHECK (last_seq >= 0)
);

CREATE TABLE routes (
  app text NOT NULL,
  dyno_id text NOT NULL,
  name text NOT NULL,
  host text NOT NULL,
  port integer NOT NULL CHECK (port BETWEEN 1 AND 65535),
  PRIMARY KEY (app, dyno_id)
);
`,
  },
  {
    version: 2,
    name: 'log drains',
    sql: `
CREATE TABLE drains (
  app text NOT NULL,
  id text NOT NULL,
  url text NOT NULL,
  token text NOT NULL,
  created_at timestamptz NOT NULL,
  PRIMARY KEY (app, id)
);
`,
  },
];

export const SCHEMA_VERSION = MIGRATIONS.at(-1)!.version;
