import type { AgentMessage, CoordinatorMessage } from '../../../shared/protocol.js';
import type { Logger } from '../../../shared/log.js';

/** What a handler may do: reply, and nothing that blocks the dispatcher. */
export interface HandlerContext {
  send(msg: AgentMessage): void;
  log: Logger;
}

export type Handler<T extends CoordinatorMessage['type']> = (msg: Extract<CoordinatorMessage, { type: T }>, ctx: HandlerContext) => void;

export type HandlerTable = { [T in Exclude<CoordinatorMessage['type'], 'welcome' | 'hint'>]: Handler<T> };
