#!/usr/bin/env node
// Prints the protocol's JSON Schema (npm run schema > protocol.schema.json).
import { protocolJsonSchema } from './protocol.js';

process.stdout.write(JSON.stringify(protocolJsonSchema(), null, 2) + '\n');
