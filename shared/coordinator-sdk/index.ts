// The coordinator SDK: the server side of the slipway agent protocol as a small typed module
// (handshake, validation, acks and de-duplication, command/result correlation, link limits,
// reconnect spreading). The reference coordinator (coordinator/) is built on it; another
// coordinator imports this file and supplies an AgentApp. Protocol: docs/protocol.md.
export { AgentServer, refuseUpgrade, COMMAND_TIMEOUT_MS, MAX_SPREAD_MS, PING_INTERVAL_MS, RECONNECTS_PER_SECOND, fitDesired } from './agent-server.js';
export type { AgentApp, AgentServerOptions, AgentServerStats, CommandBody, CommandSender } from './agent-server.js';
export { AgentLink, HELLO_TIMEOUT_MS, MAX_MISSED_PONGS } from './agent-link.js';
export { Rendezvous, RENDEZVOUS_HIGH_WATER_BYTES, RENDEZVOUS_MAX_LIFE_MS, RENDEZVOUS_PEER_WAIT_MS, type RendezvousOptions, type RendezvousSide, type RendezvousTicket } from './rendezvous.js';
export * from '../attach.js';
export { SeqLedger, type LedgerEntry } from './seq-ledger.js';
export type { SdkLogger } from './logger.js';
export * from '../protocol.js';
export * from '../link-close.js';
export { SlipwayError, ERROR_CODES, isErrorCode, type ErrorCode } from '../errors.js';
