-- Live counters (no TTL, never evicted under volatile-lru), and the windows when req.win is set
-- (windows family on the same Redis: same call, same watermark). KEYS: group base keys, then the
-- call's watermark key.
-- Group kind 'v' (phase 1, per video): event_id dedupe, totals, clicks per button, late count,
--   all-time uniques. Events come as one flat array, req.stride values each (no table per event to
--   unpack): partition, offset, kind, button, event_id, event_hour, late, user_id, position, minute,
--   hour, day (event_hour = hours since the epoch of event_time, as a string: a re-sent event has the
--   same event_time; position = "<partition>:<offset>", the seen-set's value. Both come as strings:
--   Lua's number-to-string conversion costs more than the rest of the concat. The windows' bucket
--   names are empty unless req.win and the event is on time).
--   Returns one character per event: '1' first occurrence (counted now or already counted by an
--   earlier run of the same offset), '0' duplicate event_id from another offset.
-- Group kind 'g' (phase 2, the {global} slot): global totals, CTR counters per button / surface /
--   rec slot, trending scores, events per second. Event: {partition, offset, kind, button, surface,
--   slot, video_id, time_s, late [, hour]}. Returns the number of events applied. Kind 'G': the same
--   as totals (global_totals).

local windows = WindowWriter()

local function video(base, events)
  local seen_prefix = base .. '${seen}'
  local counts, users, touched, flags = {}, {}, {}, {}
  local win = req.win
  local seen_hour, seen_key = nil, nil
  local stride = req.stride
  local i = 0
  for j = 1, #events, stride do
    i = i + 1
    local p, o, kind, button, eid, hour, late, user, position =
      events[j], events[j + 1], events[j + 2], events[j + 3], events[j + 4], events[j + 5], events[j + 6],
      events[j + 7], events[j + 8]
    if hour ~= seen_hour then
      seen_hour, seen_key = hour, seen_prefix .. hour
    end
    local first = true
    if rcall('HSETNX', seen_key, eid, position) == 1 then
      touched[seen_key] = true
    else
      first = (rcall('HGET', seen_key, eid) == position)
    end
    if first then
      flags[i] = '1'
      if wm.fresh(p, o) then
        local metric = METRIC[kind]
        count(counts, metric)
        if kind == 'c' and button ~= '' then
          local f = click_field(button)
          count(counts, f)
        end
        if late == 1 then
          count(counts, 'late')
        elseif win then
          windows.video_event(kind, button, events[j + 9], events[j + 10], events[j + 11], user)
        end
        users[user] = true
      end
    else
      flags[i] = '0'
    end
  end
  for key in pairs(touched) do
    rcall('EXPIRE', key, int(req.seen_ttl))
  end
  hincr_all(base .. '${totals}', counts)
  pfadd_all(base .. '${uniq}', keys_of(users))
  if win then
    windows.video_write(base)
  end
  return table.concat(flags)
end

local function rescale_trending(zkey, factor)
  local all = rcall('ZRANGE', zkey, 0, -1, 'WITHSCORES')
  for i = 1, #all, 2 do
    rcall('ZADD', zkey, fmt(tonumber(all[i + 1]) * factor), all[i])
  end
end

-- Trending scores are stored scaled by 2^((t - t0) / half_life), t0 (an hour) in the meta hash: the
-- stored t0, or the hour of ``t_first`` (stored now) for the first events ever.
local function trending_t0(meta_key, t_first)
  local t0 = tonumber(rcall('HGET', meta_key, 't0') or '')
  if t0 == nil then
    t0 = t_first - (t_first % 3600)
    rcall('HSET', meta_key, 't0', string.format('%d', t0), 'half_life_s', fmt(req.half_life_s))
  end
  return t0
end

-- What both forms of the {global} group write once counted: trending scores (scores[video_id], scaled
-- with t0; tmax the latest event time), global totals (plus events = applied), CTR counters, events
-- per second.
local function write_global(base, applied, totals, ctr, scores, t0, tmax)
  local meta_key = base .. '${trending_meta}'
  local zkey = base .. '${trending}'
  -- Move t0 forward before the scaled scores grow too big.
  if tmax - t0 > req.renormalise_s then
    local new_t0 = tmax - (tmax % 3600)
    local factor = 2 ^ (-(new_t0 - t0) / req.half_life_s)
    rescale_trending(zkey, factor)
    for video_id, s in pairs(scores) do
      scores[video_id] = s * factor
    end
    rcall('HSET', meta_key, 't0', string.format('%d', new_t0))
  end
  for video_id, s in pairs(scores) do
    rcall('ZINCRBY', zkey, fmt(s), video_id)
  end
  local size = rcall('ZCARD', zkey)
  if size > req.trending_max then
    rcall('ZREMRANGEBYRANK', zkey, 0, size - req.trending_max - 1)
  end
  totals.events = applied
  hincr_all(base .. '${totals}', totals)
  for dim, fields in pairs(ctr) do
    hincr_all(base .. '${ctr}' .. dim, fields)
  end
  local eps_key = base .. '${eps}' .. req.now_s
  rcall('INCRBY', eps_key, applied)
  rcall('EXPIRE', eps_key, req.eps_ttl)
end

local function global(base, events)
  local totals = {}
  local ctr = {button = {}, surface = {}, slot = {}}
  local ctr_button, ctr_surface, ctr_slot = ctr.button, ctr.surface, ctr.slot
  local scores = {}
  local applied = 0
  local hl = req.half_life_s
  local weights = req.weights
  local win = req.win
  local meta_key = base .. '${trending_meta}'
  local t0 = nil
  local tmax = nil
  for _, e in ipairs(events) do
    local p, o, kind, button, surface, slot, video_id, t, late =
      e[1], e[2], e[3], e[4], e[5], e[6], e[7], e[8], e[9]
    if wm.fresh(p, o) then
      applied = applied + 1
      local metric = METRIC[kind]
      count(totals, metric)
      if late == 1 then
        count(totals, 'late')
      elseif win then
        windows.global_event(kind, button, surface, slot, e[10])
      end
      if button ~= '' then
        count(ctr_button, pair_field(button, metric))
      end
      if surface ~= '' then
        count(ctr_surface, pair_field(surface, metric))
      end
      if slot ~= '' then
        count(ctr_slot, pair_field(slot, metric))
      end
      if t0 == nil then
        t0 = trending_t0(meta_key, t)
      end
      if tmax == nil or t > tmax then
        tmax = t
      end
      scores[video_id] = (scores[video_id] or 0) + weights[kind] * 2 ^ ((t - t0) / hl)
    end
  end
  if win then
    windows.global_write(base)
  end
  if applied == 0 then
    return 0
  end
  write_global(base, applied, totals, ctr, scores, t0, tmax)
  return applied
end

-- Group kind 'G': the {global} group as totals the consumer counted (every event fresh: req.from).
-- {n = events, totals = {field = n}, ctr = {button|surface|slot = {field = n}}, hours = {hour =
-- {funnel, button, surface, slot}} (windows, when req.win), scores = {video_id = sum of weight *
-- 2^((t - tref) / half_life)}, tref, tfirst (the first event's time), tmax}.
local function global_totals(base, agg)
  if req.win then
    windows.global_hours(agg.hours)
    windows.global_write(base)
  end
  local t0 = trending_t0(base .. '${trending_meta}', agg.tfirst)
  local scale = 2 ^ ((agg.tref - t0) / req.half_life_s)
  local scores = {}
  for video_id, s in pairs(agg.scores) do
    scores[video_id] = s * scale
  end
  write_global(base, agg.n, agg.totals, agg.ctr, scores, t0, agg.tmax)
  return agg.n
end

return run_groups({v = video, g = global, G = global_totals})
