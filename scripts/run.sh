#!/usr/bin/env bash
# `make run`: database ready, embedded Redis when none answers, every process under supervisord (foreground).
set -euo pipefail
cd "$(dirname "$0")/.."
# A second `make run` while one runs stops here, before it touches anything (one line, exit 1).
.venv/bin/python -m sofamon.runguard
mkdir -p var/log var/supervisor.d var/redis
chmod 0700 var
.venv/bin/sofamon init-db
rm -f var/supervisor.d/redis.conf
probe=0
.venv/bin/python -m sofamon.redisprobe || probe=$?
if [ "$probe" -eq 0 ]; then
    echo "using the Redis at REDIS_URL"
elif [ "$probe" -ne 1 ]; then
    exit "$probe"  # REDIS_URL was set and nothing answers there: never replace the user's Redis
else
    redis_bin=$(.venv/bin/python -m sofamon.redisprobe --server) || {
        echo "no Redis answers at REDIS_URL and no Redis 7 server to start (reinstall: make clean install)" >&2
        exit 1
    }
    echo "no Redis answers at REDIS_URL: running $redis_bin under supervisord (data in var/redis)"
    cat > var/supervisor.d/redis.conf <<CONF
[program:redis]
command=$redis_bin --bind 127.0.0.1 --port 6379 --dir %(here)s/../redis --appendonly yes --save "" --protected-mode yes
priority=10
autorestart=true
startsecs=2
stopwaitsecs=30
stdout_logfile=%(here)s/../log/redis.log
stdout_logfile_maxbytes=10MB
stdout_logfile_backups=3
redirect_stderr=true
CONF
fi
exec .venv/bin/supervisord -n -c supervisord.conf
