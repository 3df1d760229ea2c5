-- Amber's Lua prelude: builds the sandbox Redis 7.0 gives scripts. It runs once, when the
-- engine starts, with the real globals table, the hidden bridge to the server and the error
-- handler; it returns the environment scripts run in, the function that loads a library and
-- the bridge behind `redis.call`. The engine calls scripts itself, through the C API.
local G, bridge, handler, libraries = ...
local real_pcall, real_setmetatable, real_rawset = pcall, setmetatable, rawset
local error, type, tostring, xpcall = error, type, tostring, xpcall

-- Tables scripts see read-only: a proxy that reads through to the real table.
local readonly = real_setmetatable({}, {__mode = 'k'})
local function deny()
  error('Attempt to modify a readonly table', 2)
end
local function protect(target, index)
  local meta = {__index = index or target, __newindex = deny}
  local proxy = real_setmetatable({}, meta)
  local meta_view = real_setmetatable({}, {__index = meta, __newindex = deny, __metatable = false})
  readonly[meta_view] = true
  meta.__metatable = meta_view
  readonly[proxy] = true
  return proxy, meta
end

G.setmetatable = function(t, m)
  if readonly[t] then deny() end
  return real_setmetatable(t, m)
end
G.rawset = function(t, k, v)
  if readonly[t] then deny() end
  return real_rawset(t, k, v)
end
-- Redis 7's pcall: a Redis error table caught by pcall comes back as its message.
local function caught(ok, ...)
  if ok then return ok, ... end
  local err = ...
  if type(err) == 'table' and type(err.err) == 'string' then
    err = err.err
  elseif type(err) == 'userdata' then
    err = bridge.error_text(err)
  end
  return false, err
end
G.pcall = function(f, ...)
  return caught(real_pcall(f, ...))
end

-- loadstring compiles text only (Redis's Lua refuses bytecode), into the sandbox.
local real_loadstring, setfenv = loadstring, setfenv
local sandbox_env
G.loadstring = function(code, name)
  if type(code) == 'string' and code:byte(1) == 27 then
    return nil, 'binary chunks are not allowed'
  end
  local f, err = real_loadstring(code, name)
  if f and sandbox_env then setfenv(f, sandbox_env) end
  return f, err
end

-- The redis API. call (a C function set by the engine, so a tail call keeps the caller's
-- frame for error positions) raises a command's error; pcall returns it.
local redis = G.redis
local function call_bridge()
  return bridge.call()
end
redis.setresp = function(...) return bridge.setresp(...) end
redis.set_repl = function(...) return bridge.set_repl(...) end
redis.replicate_commands = function() return true end

for _, name in ipairs(libraries) do
  G[name] = protect(G[name])
end

-- What Functions' library code sees while FUNCTION LOAD runs it.
local library_api = {
  register_function = function(...) return bridge.register_function(...) end,
  log = redis.log,
  LOG_DEBUG = redis.LOG_DEBUG, LOG_VERBOSE = redis.LOG_VERBOSE,
  LOG_NOTICE = redis.LOG_NOTICE, LOG_WARNING = redis.LOG_WARNING,
  REDIS_VERSION = redis.REDIS_VERSION, REDIS_VERSION_NUM = redis.REDIS_VERSION_NUM,
}
local library_redis = protect(library_api, function(_, key)
  local value = library_api[key]
  if value == nil then
    error("Script attempted to access nonexistent global variable '" .. tostring(key) .. "'", 2)
  end
  return value
end)

-- Scripts see the globals through a read-only proxy that reads the real table (a global is
-- two table look-ups, no function call); the real table's metatable raises for a missing
-- name. While library code loads, the proxy reads through `loading_lookup` instead, which
-- shows the library API's `redis` and nothing else.
local function missing(_, key)
  error("Script attempted to access nonexistent global variable '" .. tostring(key) .. "'", 2)
end
local function loading_lookup(_, key)
  if key == 'redis' then return library_redis end
  error("Script attempted to access nonexistent global variable '" .. tostring(key) .. "'", 2)
end
local env, env_meta = protect(G)
G._G = env
sandbox_env = env

local function load_library(f)
  env_meta.__index = loading_lookup
  local ok, err = xpcall(f, handler)
  env_meta.__index = G
  return ok, err
end

real_setmetatable(G, {__index = missing})
return env, load_library, call_bridge
