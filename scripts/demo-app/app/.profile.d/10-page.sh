# Runs at dyno boot (Heroku sources .profile.d/*.sh before the command): writes the page
# that proves which dyno answered.
mkdir -p /app/public
cat > /app/public/index.html <<PAGE
Hello from $DYNO of ${APP_NAME:-the demo app} (slipway dyno, port $PORT)
PAGE
