-- Shared by every ClickPulse script (prepended when the script is registered).
-- Tokens like ${totals} are key suffixes filled in from streaming/keyspace.py, the one place that
-- names keys. Every key a script touches is KEYS[i] (the base key of group i, which carries the hash
-- tag) plus a suffix, so all keys of a call sit in one Cluster slot.
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
    redis.call('HINCRBY', key, field, int(n))
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
local function Watermark(key, field_prefix)
  local start, top = {}, {}
  local self = {}
  local function current(p)
    local w = start[p]
    if w == nil then
      w = tonumber(redis.call('HGET', key, field_prefix .. p) or '-1') or -1
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
      redis.call('HSET', key, unpack(args))
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
    local total = redis.call('HINCRBY', key, field, int(n))
    if not created and total == n then
      created = true
    end
  end
  if created then
    redis.call('EXPIRE', key, int(ttl))
  end
end

local function write_hll(key, members, ttl)
  pfadd_all(key, keys_of(members))
  redis.call('EXPIRE', key, int(ttl))
end

-- 'clicks:<button>' once per button and call (a table look-up costs less than a concatenation).
local click_fields = {}
local function click_field(button)
  local f = click_fields[button]
  if f == nil then
    f = 'clicks:' .. button
    click_fields[button] = f
  end
  return f
end

-- '<value>|<metric>' CTR fields, once per value and call.
local pair_fields = {}
local function pair_field(value, metric)
  local by_metric = pair_fields[value]
  if by_metric == nil then
    by_metric = {}
    pair_fields[value] = by_metric
  end
  local f = by_metric[metric]
  if f == nil then
    f = value .. '|' .. metric
    by_metric[metric] = f
  end
  return f
end

local function count(t, k)
  t[k] = (t[k] or 0) + 1
end

local function WindowWriter()
  local self = {}
  -- One video's events (video_event for each, then video_write): minute and hour buckets, hourly and
  -- daily uniques, kept by bucket name and written per video, so no key name is built per event.
  local minutes, hours, hour_users, day_users = {}, {}, {}, {}
  function self.video_event(kind, button, minute, hour, day, user)
    local metric = METRIC[kind]
    local m = minutes[minute]
    if m == nil then
      m = {}
      minutes[minute] = m
    end
    local h = hours[hour]
    if h == nil then
      h = {}
      hours[hour] = h
    end
    m[metric] = (m[metric] or 0) + 1
    h[metric] = (h[metric] or 0) + 1
    if kind == 'c' and button ~= '' then
      local f = click_field(button)
      m[f] = (m[f] or 0) + 1
      h[f] = (h[f] or 0) + 1
    end
    local u = hour_users[hour]
    if u == nil then
      u = {}
      hour_users[hour] = u
    end
    u[user] = true
    u = day_users[day]
    if u == nil then
      u = {}
      day_users[day] = u
    end
    u[user] = true
  end
  function self.video_write(base)
    for minute, fields in pairs(minutes) do
      write_counter(base .. '${minute}' .. minute, fields, req.minute_ttl)
    end
    for hour, fields in pairs(hours) do
      write_counter(base .. '${hour}' .. hour, fields, req.hour_ttl)
    end
    for hour, users in pairs(hour_users) do
      write_hll(base .. '${uniq_hour}' .. hour, users, req.uniq_hour_ttl)
    end
    for day, users in pairs(day_users) do
      write_hll(base .. '${uniq_day}' .. day, users, req.uniq_day_ttl)
    end
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

-- The end of a counting script: each group of the call through ``video`` (kind 'v', one video's slot)
-- or ``global`` (kind 'g', the {global} slot; each writes its own windows), then the watermark.
-- Returns one result per group.
local function run_groups(video, global)
  local gap = wm.gap(req.after)
  if gap then
    return redis.error_reply(gap)
  end
  local out = {}
  for gi, events in ipairs(req.g) do
    if req.k[gi] == 'v' then
      out[gi] = video(KEYS[gi], events)
    else
      out[gi] = global(KEYS[gi], events)
    end
  end
  wm.save(req.upto)
  return out
end
