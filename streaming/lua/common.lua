-- Shared by every ClickPulse script (prepended when the script is registered).
-- Tokens like ${totals} are key suffixes filled in from streaming/keyspace.py, the one place that
-- names keys. Every key a script touches is KEYS[i] (the base key of group i, which carries the hash
-- tag) plus a suffix, so all keys of a call sit in one Cluster slot.
local req = cjson.decode(ARGV[1])
local topic = req.topic
local METRIC = {c = 'clicks', i = 'impressions', v = 'conversions'}

local function add(t, k, n)
  t[k] = (t[k] or 0) + n
end

local function bucket(t, key)
  local b = t[key]
  if b == nil then
    b = {}
    t[key] = b
  end
  return b
end

local function hincr_all(key, fields)
  for field, n in pairs(fields) do
    redis.call('HINCRBY', key, field, n)
  end
end

-- PFADD in chunks: Lua's unpack() is limited to a few thousand values.
local function pfadd_all(key, members)
  local n = #members
  local i = 1
  while i <= n do
    local j = math.min(i + 499, n)
    redis.call('PFADD', key, unpack(members, i, j))
    i = j + 1
  end
end

-- Distinct members of a set table {member = true} as an array.
local function keys_of(set)
  local out = {}
  for k in pairs(set) do
    out[#out + 1] = k
  end
  return out
end

-- Per-partition offset watermark stored in a hash field next to the data it guards: an event is
-- applied only when its offset is above the highest offset already applied for its partition, so a
-- replayed offset never counts twice. Events of one partition arrive in offset order.
local function Watermark(key, field_prefix)
  local current, updated = {}, {}
  local self = {}
  function self.fresh(p, o)
    local w = current[p]
    if w == nil then
      w = tonumber(redis.call('HGET', key, field_prefix .. p) or '-1') or -1
      current[p] = w
    end
    if o > w then
      current[p] = o
      updated[p] = o
      return true
    end
    return false
  end
  function self.save()
    for p, o in pairs(updated) do
      redis.call('HSET', key, field_prefix .. p, string.format('%d', o))
    end
  end
  return self
end

local function fmt(x)
  return string.format('%.17g', x)
end
