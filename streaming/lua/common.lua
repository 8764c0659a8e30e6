-- Shared by every ClickPulse script (prepended when the script is registered).
-- Tokens like ${totals} are key suffixes filled in from streaming/keyspace.py, the one place that
-- names keys. Every key a script touches is KEYS[i] (the base key of group i, which carries the hash
-- tag) plus a suffix, so all keys of a call sit in one Cluster slot.
local rcall = redis.call
local req = cmsgpack.unpack(ARGV[1])
local topic = req.topic
local METRIC = {c = 'clicks', i = 'impressions', v = 'conversions'}

-- Integers as command arguments: redis.call would format each number argument with sprintf (as
-- would tostring), which costs more than the rest of a call's argument handling; each distinct value
-- (increments, TTLs) is formatted once per call instead. Integers only.
local int_text = {}
local function int(n)
  local s = int_text[n]
  if s == nil then
    s = string.format('%d', n)
    int_text[n] = s
  end
  return s
end

local function hincr_all(key, fields)
  for field, n in pairs(fields) do
    rcall('HINCRBY', key, field, int(n))
  end
end

-- PFADD in chunks: Lua's unpack() is limited to a few thousand values.
local function pfadd_all(key, members)
  local n = #members
  local i = 1
  while i <= n do
    local j = math.min(i + 499, n)
    rcall('PFADD', key, unpack(members, i, j))
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

-- Per-partition offset watermark of the whole call, in KEYS[#KEYS] (a key in the same hash slot as
-- the groups: one per slot on a Cluster, one per Redis otherwise), field <role>:<topic>:<partition>.
-- An event is applied only when its offset is above the watermark read at the start of the call, so
-- a replayed offset never counts twice; the call then stores the highest offset it covers (its
-- events', and req.upto's: the consumer's last offset of the partition in this call, duplicates it
-- left out included). Calls of one role run in offset order, and a call covers every group of its
-- slot for its range of offsets.
-- The consumer writes a call before the replies of the earlier ones are read; req.after names, per
-- partition, the last offset of the role's previous call. When the watermark is below it, that call
-- failed, and this one refuses to run (GAP error, nothing written) rather than move the watermark
-- past offsets that were never counted: the consumer retries both, in order.
-- A call that carries totals instead of events (group kinds 'G' and 'U') cannot skip part of them:
-- req.from names, per partition, its first offset, and the call refuses to run (REPLAY error) unless
-- the watermark is below it. The consumer then sends the events themselves.
local function Watermark(key, field_prefix)
  local start, top = {}, {}
  local self = {}
  local function current(p)
    local w = start[p]
    if w == nil then
      w = tonumber(rcall('HGET', key, field_prefix .. p) or '-1') or -1
      start[p] = w
    end
    return w
  end
  function self.fresh(p, o)
    local w = current(p)
    if top[p] == nil or o > top[p] then
      top[p] = o
    end
    return o > w
  end
  function self.gap(after)
    for p, o in pairs(after or {}) do
      local w = current(p)
      if w < o then
        return string.format('GAP partition %d: watermark %d is below %d, where the previous call ended', p, w, o)
      end
    end
    return nil
  end
  function self.refusal(after, from)
    local gap = self.gap(after)
    if gap then
      return gap
    end
    for p, o in pairs(from or {}) do
      local w = current(p)
      if w >= o then
        return string.format('REPLAY partition %d: watermark %d is at or above %d, where this call starts', p, w, o)
      end
    end
    return nil
  end
  function self.save(upto)
    for p, o in pairs(upto or {}) do
      current(p)
      if top[p] == nil or o > top[p] then
        top[p] = o
      end
    end
    local args = {}
    for p, o in pairs(top) do
      if o > start[p] then
        args[#args + 1] = field_prefix .. p
        args[#args + 1] = string.format('%d', o)
      end
    end
    if #args > 0 then
      rcall('HSET', key, unpack(args))
    end
  end
  return self
end

local wm = Watermark(KEYS[#KEYS], req.role .. ':' .. topic .. ':')

local function fmt(x)
  return string.format('%.17g', x)
end

-- Windowed counters by event_time (every key gets a TTL). A key this call creates answers its first
-- HINCRBY with exactly the increment, so EXPIRE follows only then (a field new to an existing key
-- also matches: its TTL is refreshed, which is harmless). HyperLogLogs get EXPIRE on every write (an
-- evicted HLL re-created later must not lose its TTL).
local function write_counter(key, fields, ttl)
  local created = false
  for field, n in pairs(fields) do
    local total = rcall('HINCRBY', key, field, int(n))
    if not created and total == n then
      created = true
    end
  end
  if created then
    rcall('EXPIRE', key, int(ttl))
  end
end

local function write_hll(key, members, ttl)
  pfadd_all(key, keys_of(members))
  rcall('EXPIRE', key, int(ttl))
end

-- t[key], a new table the first time.
local function bucket(t, key)
  local b = t[key]
  if b == nil then
    b = {}
    t[key] = b
  end
  return b
end

local function count(t, k)
  t[k] = (t[k] or 0) + 1
end

-- Field names '<prefix><value>', each built once per call (a table look-up costs less than a
-- concatenation, which allocates and hashes a new string).
local function FieldNames(prefix)
  local names = {}
  return function(value)
    local f = names[value]
    if f == nil then
      f = prefix .. value
      names[value] = f
    end
    return f
  end
end

local click_field = FieldNames('clicks:')

-- CTR fields '<value>|<metric>', once per value, metric and call.
local pair_fields = {}
local function pair_field(value, metric)
  local by_metric = bucket(pair_fields, value)
  local f = by_metric[metric]
  if f == nil then
    f = value .. '|' .. metric
    by_metric[metric] = f
  end
  return f
end

local function WindowWriter()
  local self = {}
  -- One video's events (video_event for each, then video_write): minute and hour buckets, hourly and
  -- daily uniques, kept by bucket name and written per video, so no key name is built per event.
  local minutes, hours, hour_users, day_users = {}, {}, {}, {}
  function self.video_event(kind, button, minute, hour, day, user)
    local metric = METRIC[kind]
    local m, h = bucket(minutes, minute), bucket(hours, hour)
    count(m, metric)
    count(h, metric)
    if kind == 'c' and button ~= '' then
      local f = click_field(button)
      count(m, f)
      count(h, f)
    end
    bucket(hour_users, hour)[user] = true
    bucket(day_users, day)[user] = true
  end
  -- write(key, data, ttl) for each bucket, the key being <prefix><bucket name>.
  local function write_buckets(prefix, buckets, write, ttl)
    for name, data in pairs(buckets) do
      write(prefix .. name, data, ttl)
    end
  end
  function self.video_write(base)
    write_buckets(base .. '${minute}', minutes, write_counter, req.minute_ttl)
    write_buckets(base .. '${hour}', hours, write_counter, req.hour_ttl)
    write_buckets(base .. '${uniq_hour}', hour_users, write_hll, req.uniq_hour_ttl)
    write_buckets(base .. '${uniq_day}', day_users, write_hll, req.uniq_day_ttl)
    minutes, hours, hour_users, day_users = {}, {}, {}, {}
  end
  -- The events of the {global} slot (global_event for each, then global_write): hourly funnel and
  -- hourly CTR counters, kept by hour and written once per call.
  local global_hours = {}
  function self.global_event(kind, button, surface, slot, hour)
    local metric = METRIC[kind]
    local h = global_hours[hour]
    if h == nil then
      h = {funnel = {}, button = {}, surface = {}, slot = {}}
      global_hours[hour] = h
    end
    count(h.funnel, metric)
    if button ~= '' then
      count(h.button, pair_field(button, metric))
    end
    if surface ~= '' then
      count(h.surface, pair_field(surface, metric))
    end
    if slot ~= '' then
      count(h.slot, pair_field(slot, metric))
    end
  end
  -- The same, already counted per hour by the consumer: {hour = {funnel, button, surface, slot}}.
  function self.global_hours(hours)
    global_hours = hours
  end
  function self.global_write(base)
    local ttl = req.global_hour_ttl
    for hour, h in pairs(global_hours) do
      write_counter(base .. '${hour}' .. hour, h.funnel, ttl)
      for _, dim in ipairs({'button', 'surface', 'slot'}) do
        if next(h[dim]) ~= nil then
          write_counter(base .. '${ctr}' .. dim .. '${hour}' .. hour, h[dim], ttl)
        end
      end
    end
    global_hours = {}
  end
  return self
end

-- The end of a counting script: each group of the call through the handler of its kind
-- (handlers[kind](base key, events or totals)), then the watermark. Returns one result per group.
local function run_groups(handlers)
  local refusal = wm.refusal(req.after, req.from)
  if refusal then
    return redis.error_reply(refusal)
  end
  local out = {}
  for gi, events in ipairs(req.g) do
    out[gi] = handlers[req.k[gi]](KEYS[gi], events)
  end
  wm.save(req.upto)
  return out
end
