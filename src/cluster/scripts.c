#include "cluster/scripts.h"

#include <stdio.h>
#include <string.h>

#include "util/sha1.h"

/* Shared by the scripts that take a user down on a node: the user leaves the node's set; if
 * that was its last node in the cluster, it leaves the room, its record says logged off, and
 * (notify: app.roomNotices) the room hears `exit` with the room's count after it
 * (x<app> <len>:<user><online>). */
#define LUA_USER_DOWN                                                                              \
    "local function user_down(node, app, user, now, ttl, notify)\n"                                \
    "  local ukey = app .. '_' .. user\n"                                                          \
    "  local nodesKey = 'imgate:user:' .. ukey\n"                                                  \
    "  redis.call('SREM', 'imgate:node:' .. node .. ':users', ukey)\n"                             \
    "  if redis.call('SREM', nodesKey, node) == 1 and redis.call('SCARD', nodesKey) == 0 then\n"   \
    "    local roomKey = 'imgate:room:' .. app\n"                                                  \
    "    redis.call('SREM', roomKey, user)\n"                                                      \
    "    local recKey = 'acc:user:online:' .. ukey\n"                                              \
    "    local rec = redis.call('GET', recKey)\n"                                                  \
    "    if rec then\n"                                                                            \
    "      rec = string.gsub(rec, '\"logOutTime\":%d+', '\"logOutTime\":' .. now, 1)\n"            \
    "      rec = string.gsub(rec, '\"isLogoff\":%a+', '\"isLogoff\":true', 1)\n"                   \
    "      redis.call('SET', recKey, rec, 'EX', ttl)\n"                                            \
    "    end\n"                                                                                    \
    "    if notify then redis.call('PUBLISH', 'imgate:room:' .. app,\n"                            \
    "      'x' .. app .. ' ' .. #user .. ':' .. user .. redis.call('SCARD', roomKey)) end\n"       \
    "  end\n"                                                                                      \
    "end\n"

/* U: a login (a new record, as the seed writes one per login); P: present (re-announce: the
 * user's sets again, and an online record only gets heartbeatTime = now); R: refresh (an online
 * record gets heartbeatTime = now, two commands; a missing or logged-off one is repaired as P
 * does); D: down. The first node of a user in the cluster makes it enter the room:
 * e<app> <len>:<user><online>. While re-announcing (syncing), the node's users are also
 * collected in its sync set. */
static const char presence_lua[] = LUA_USER_DOWN
    "local node, now, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])\n"
    "local accIp, accPort, syncing = ARGV[4], ARGV[5], ARGV[6] == '1'\n"
    "local notify = ARGV[7] == '1'\n"
    "local nodeUsers = 'imgate:node:' .. node .. ':users'\n"
    "local syncKey = 'imgate:node:' .. node .. ':sync'\n"
    "for i = 8, #ARGV - 4, 5 do\n"
    "  local op, app, user, ujson, client = ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+3], ARGV[i+4]\n"
    "  local ukey = app .. '_' .. user\n"
    "  local recKey = 'acc:user:online:' .. ukey\n"
    "  local rec = false\n"
    "  if op == 'P' or op == 'R' then rec = redis.call('GET', recKey) end\n"
    "  local online = rec and string.find(rec, '\"isLogoff\":false', 1, true)\n"
    "  if op == 'D' then\n"
    "    if syncing then redis.call('SREM', syncKey, ukey) end\n"
    "    user_down(node, app, user, now, ttl, notify)\n"
    "  elseif op == 'R' and online then\n"
    "    rec = string.gsub(rec, '\"heartbeatTime\":%d+', '\"heartbeatTime\":' .. now, 1)\n"
    "    redis.call('SET', recKey, rec, 'EX', ttl)\n"
    "  else\n"
    "    local nodesKey = 'imgate:user:' .. ukey\n"
    "    local roomKey = 'imgate:room:' .. app\n"
    "    local added = redis.call('SADD', nodesKey, node)\n"
    "    redis.call('SADD', nodeUsers, ukey)\n"
    "    if syncing then redis.call('SADD', syncKey, ukey) end\n"
    "    local first = added == 1 and redis.call('SCARD', nodesKey) == 1\n"
    "    if first then redis.call('SADD', roomKey, user) end\n"
    "    if online then\n"
    "      rec = string.gsub(rec, '\"heartbeatTime\":%d+', '\"heartbeatTime\":' .. now, 1)\n"
    "    else\n"
    "      rec = '{\"accIp\":' .. accIp .. ',\"accPort\":\"' .. accPort .. '\",\"appID\":' .. app "
    "..\n"
    "        ',\"userID\":' .. ujson .. ',\"clientIp\":\"' .. client .. '\",\"clientPort\":\"\"' "
    "..\n"
    "        ',\"loginTime\":' .. now .. ',\"heartbeatTime\":' .. now .. ',\"logOutTime\":0' ..\n"
    "        ',\"qua\":\"\",\"deviceInfo\":\"\",\"isLogoff\":false}'\n"
    "    end\n"
    "    redis.call('SET', recKey, rec, 'EX', ttl)\n"
    "    if first and notify then\n"
    "      redis.call('PUBLISH', 'imgate:room:' .. app,\n"
    "        'e' .. app .. ' ' .. #user .. ':' .. user .. redis.call('SCARD', roomKey))\n"
    "    end\n"
    "  end\n"
    "end\n"
    "return 1\n";

/* Bounded work per call (SPOP batch), so cleaning a node of 19 000 users never blocks Redis
 * for long; the caller calls again while users are left. */
static const char reap_lua[] = LUA_USER_DOWN
    "local node, now, ttl, batch, mode = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]),"
    " ARGV[5]\n"
    "local notify = ARGV[6] == '1'\n"
    "if mode == 'dead' and redis.call('EXISTS', 'imgate:node:' .. node .. ':alive') == 1 then\n"
    "  return {-1, 0}\n"
    "end\n"
    "local usersKey = 'imgate:node:' .. node .. ':users'\n"
    "local popped = redis.call('SPOP', usersKey, batch)\n"
    "for _, ukey in ipairs(popped) do\n"
    "  local sep = string.find(ukey, '_', 1, true)\n"
    "  if sep then\n"
    "    user_down(node, string.sub(ukey, 1, sep - 1), string.sub(ukey, sep + 1), now, ttl,\n"
    "      notify)\n"
    "  end\n"
    "end\n"
    "local left = redis.call('SCARD', usersKey)\n"
    "if left == 0 then\n"
    "  local info = redis.call('HGET', 'imgate:nodes', node)\n"
    "  redis.call('HDEL', 'imgate:nodes', node)\n"
    /* The seed's acc:hash:servers field goes too, unless another live node shares it (several
     * nodes on one machine and rpcPort have the same "<ip>:<rpcPort>"). */
    "  local seed = info and string.match(info, '\"seed\":\"([^\"]*)\"')\n"
    "  if seed then\n"
    "    local shared = false\n"
    "    for _, v in ipairs(redis.call('HVALS', 'imgate:nodes')) do\n"
    "      if string.find(v, '\"seed\":\"' .. seed .. '\"', 1, true) then shared = true end\n"
    "    end\n"
    "    if not shared then redis.call('HDEL', 'acc:hash:servers', seed) end\n"
    "  end\n"
    "  redis.call('DEL', 'imgate:node:' .. node .. ':sync')\n"
    "  if mode == 'self' then redis.call('DEL', 'imgate:node:' .. node .. ':alive') end\n"
    "end\n"
    "return {left, #popped}\n";

static const char find_dead_lua[] =
    "local dead = {}\n"
    "for _, id in ipairs(redis.call('HKEYS', 'imgate:nodes')) do\n"
    "  if redis.call('EXISTS', 'imgate:node:' .. id .. ':alive') == 0 then\n"
    "    dead[#dead + 1] = id\n"
    "  end\n"
    "end\n"
    "return dead\n";

/* The seed's acc:hash:servers ("<ip>:<rpcPort>" -> unix time, EXPIRE 7200) is kept for tools
 * that read it. */
static const char register_lua[] =
    "local had = redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'GET')\n"
    "redis.call('HSET', 'imgate:nodes', ARGV[3], ARGV[4])\n"
    "redis.call('HSET', 'acc:hash:servers', ARGV[5], ARGV[1])\n"
    "redis.call('EXPIRE', 'acc:hash:servers', 7200)\n"
    "if had then return 1 end\n"
    "return 0\n";

static const char send_user_lua[] =
    "if #KEYS == 2 and not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[2]) then\n"
    "  return -1\n"
    "end\n"
    "local n = 0\n"
    "for _, node in ipairs(redis.call('SMEMBERS', KEYS[1])) do\n"
    "  n = n + redis.call('PUBLISH', 'imgate:node:' .. node, ARGV[1])\n"
    "end\n"
    "return n\n";

static const char send_room_lua[] =
    "if #KEYS == 1 and not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[3]) then\n"
    "  return -1\n"
    "end\n"
    "return redis.call('PUBLISH', ARGV[1], ARGV[2])\n";

static const char online_lua[] =
    "for _, k in ipairs(KEYS) do\n"
    "  for _, node in ipairs(redis.call('SMEMBERS', k)) do\n"
    "    if redis.call('EXISTS', 'imgate:node:' .. node .. ':alive') == 1 then return 1 end\n"
    "  end\n"
    "end\n"
    "return 0\n";

/* One call however many are stale: they are the few that left while Redis could not be told
 * (SDIFF of the node's set and what the re-announce collected). */
static const char sync_done_lua[] = LUA_USER_DOWN
    "local node, now, ttl, notify = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4] == '1'\n"
    "local usersKey = 'imgate:node:' .. node .. ':users'\n"
    "local syncKey = 'imgate:node:' .. node .. ':sync'\n"
    "local stale = redis.call('SDIFF', usersKey, syncKey)\n"
    "for _, ukey in ipairs(stale) do\n"
    "  local sep = string.find(ukey, '_', 1, true)\n"
    "  if sep then\n"
    "    user_down(node, string.sub(ukey, 1, sep - 1), string.sub(ukey, sep + 1), now, ttl,\n"
    "      notify)\n"
    "  end\n"
    "end\n"
    "redis.call('DEL', syncKey)\n"
    "return #stale\n";

static const struct {
    const char *name;
    const char *lua;
} scripts[SCRIPT_COUNT] = {
    [SCRIPT_PRESENCE] = {"presence", presence_lua},
    [SCRIPT_REAP] = {"reap", reap_lua},
    [SCRIPT_FIND_DEAD] = {"find_dead", find_dead_lua},
    [SCRIPT_REGISTER] = {"register", register_lua},
    [SCRIPT_SEND_USER] = {"send_user", send_user_lua},
    [SCRIPT_SEND_ROOM] = {"send_room", send_room_lua},
    [SCRIPT_ONLINE] = {"online", online_lua},
    [SCRIPT_SYNC_DONE] = {"sync_done", sync_done_lua},
};

/* EVALSHA names a script by the SHA-1 of its text. util/sha1, not OpenSSL's: its first digest
 * would page ~2 MB of libcrypto into every node of a cluster. */
static char g_sha[SCRIPT_COUNT][SHA1_DIGEST_LEN * 2 + 1];

int scripts_init(void) {
    for (int i = 0; i < SCRIPT_COUNT; i++) {
        uint8_t md[SHA1_DIGEST_LEN];
        sha1(scripts[i].lua, strlen(scripts[i].lua), md);
        for (int k = 0; k < SHA1_DIGEST_LEN; k++)
            snprintf(g_sha[i] + 2 * k, 3, "%02x", md[k]);
    }
    return 0;
}

const char *script_source(script_id_t id) {
    return scripts[id].lua;
}

const char *script_sha(script_id_t id) {
    return g_sha[id];
}

const char *script_name(script_id_t id) {
    return scripts[id].name;
}
