-- Windowed counters by event_time (every key carries a TTL), for events within the allowed lateness.
-- Group kind 'v' (per video): minute and hour buckets, hourly and daily unique users.
--   Event: {partition, offset, kind, button, minute, hour, day, user_id}.
-- Group kind 'g' (the {global} slot): hourly funnel and hourly CTR counters per dimension.
--   Event: {partition, offset, kind, button, surface, slot, hour}.
-- Returns the number of events applied per group.

local function flush(counters, hlls)
  for key, c in pairs(counters) do
    hincr_all(key, c.fields)
    redis.call('EXPIRE', key, c.ttl)
  end
  for key, h in pairs(hlls) do
    pfadd_all(key, keys_of(h.members))
    redis.call('EXPIRE', key, h.ttl)
  end
end

local function counter(counters, key, ttl)
  local c = counters[key]
  if c == nil then
    c = {fields = {}, ttl = ttl}
    counters[key] = c
  end
  return c.fields
end

local function video(base, events)
  local wm = Watermark(base .. '${wm}', 'win:' .. topic .. ':')
  local counters, hlls = {}, {}
  local applied = 0
  for _, e in ipairs(events) do
    local p, o, kind, button, minute, hour, day, user = e[1], e[2], e[3], e[4], e[5], e[6], e[7], e[8]
    if wm.fresh(p, o) then
      applied = applied + 1
      local metric = METRIC[kind]
      local m = counter(counters, base .. '${minute}' .. minute, req.minute_ttl)
      local h = counter(counters, base .. '${hour}' .. hour, req.hour_ttl)
      add(m, metric, 1)
      add(h, metric, 1)
      if kind == 'c' and button ~= '' then
        add(m, 'clicks:' .. button, 1)
        add(h, 'clicks:' .. button, 1)
      end
      local hh = bucket(hlls, base .. '${uniq_hour}' .. hour)
      hh.ttl = req.uniq_hour_ttl
      hh.members = hh.members or {}
      hh.members[user] = true
      local dd = bucket(hlls, base .. '${uniq_day}' .. day)
      dd.ttl = req.uniq_day_ttl
      dd.members = dd.members or {}
      dd.members[user] = true
    end
  end
  flush(counters, hlls)
  wm.save()
  return applied
end

local function global(base, events)
  local wm = Watermark(base .. '${wm}', 'win:' .. topic .. ':')
  local counters = {}
  local applied = 0
  local ttl = req.global_hour_ttl
  for _, e in ipairs(events) do
    local p, o, kind, button, surface, slot, hour = e[1], e[2], e[3], e[4], e[5], e[6], e[7]
    if wm.fresh(p, o) then
      applied = applied + 1
      local metric = METRIC[kind]
      add(counter(counters, base .. '${hour}' .. hour, ttl), metric, 1)
      if button ~= '' then
        add(counter(counters, base .. '${ctr}button${hour}' .. hour, ttl), button .. '|' .. metric, 1)
      end
      if surface ~= '' then
        add(counter(counters, base .. '${ctr}surface${hour}' .. hour, ttl), surface .. '|' .. metric, 1)
      end
      if slot ~= '' then
        add(counter(counters, base .. '${ctr}slot${hour}' .. hour, ttl), slot .. '|' .. metric, 1)
      end
    end
  end
  flush(counters, {})
  wm.save()
  return applied
end

local out = {}
for gi, events in ipairs(req.g) do
  if req.k[gi] == 'v' then
    out[gi] = video(KEYS[gi], events)
  else
    out[gi] = global(KEYS[gi], events)
  end
end
return out
