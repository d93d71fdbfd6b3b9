// The logging the SDK needs: a pino logger fits, and so does anything with these four methods.
export interface SdkLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}
