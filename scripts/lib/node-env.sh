# Sourced by the project's scripts: puts slipway's Node.js runtime (scripts/install-node.sh)
# first on PATH, so `node`, `npm` and `npx` are Node 24 whatever node the host has.
# (No dependency builds a native addon: npm 11 runs no install scripts unless approved, and
# ssh2's optional one is not needed by dockerode over a unix socket.)
if [ -x /opt/slipway-node/current/bin/node ]; then
  export PATH="/opt/slipway-node/current/bin:$PATH"
fi
