#include "server/backplane.hpp"

#include "common/log.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <random>
#include <system_error>

namespace chat {

namespace {

using Clock = std::chrono::steady_clock;

// The event script: KEYS none (every key is built from the prefix in ARGV[1]; one Redis, no
// cluster). ARGV: prefix, maxlen, origin, serial, ms, kind, nick, arg, code, text, claim, floor,
// seat, hold. Returns the event's id; -1 if this origin's serial was applied already (a resend
// after a broken connection), -2 for `register`; an error TAKEN, HELD, UNKNOWN, EXPIRED or MOVED
// if the claim is refused, FORGOTTEN if the instance is not in the set (see below).
//
// Seats (a client that joined with ids may RESUME on any instance): `seats` maps a token's
// hash to "nick<TAB>dropped ms<TAB>expires ms" (0 0 while connected), `seat_of` a folded
// nickname to its seat's hash. While a seat is held its nickname's owner in `nicks` is "held".
//   take     (JOIN)   ARGV[13] = the new seat's hash, or "" (no seat)
//   release  (LEAVE)  ARGV[14] = how long to hold its seat (ms), "0": the seat is closed
//   rename   (NICK)   the seat follows the nickname
//   resume   (BACK)   ARGV[13] = the old token's hash, ARGV[9] (code) = the new one's; the
//                     event's nick and arg (ms away) come from the seat
//   announce (JOIN)   a member again, after Redis forgot this instance; ARGV[13] = its seat's
//                     hash. Its nickname taken meanwhile: the JOIN is for nick_2 (or _3, ...)
//                     with arg = the old name, and `alias:<origin>` maps old to new (events
//                     still published under the old name are rewritten); its seat resumed
//                     elsewhere meanwhile (`resumed:<hash>`): MOVED
//   register          the instance is in the set again (after its members' announce JOINs)
// An instance reaped while it was only cut off or stalled is out of `instances` until an
// announce or register puts it back: meanwhile its other events are refused (FORGOTTEN) and
// the backplane sends them again behind those.
constexpr const char* event_script = R"lua(
local p, maxlen, origin, serial = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local applied = tonumber(redis.call('GET', p .. 'serial:' .. origin) or '0')
if serial <= applied then return -1 end
local claim = ARGV[11]
-- An instance Redis forgot (reaped while it was only cut off or stalled, or Redis restarted
-- empty) is out of the set until it has announced its members again: what it publishes before
-- that is refused and sent again after (a name may have been given away meanwhile).
if claim == 'announce' or claim == 'register' then
  redis.call('SADD', p .. 'instances', origin)
elseif redis.call('SISMEMBER', p .. 'instances', origin) == 0 then
  return redis.error_reply('FORGOTTEN')
end
if claim == 'register' then
  redis.call('SET', p .. 'serial:' .. origin, serial, 'PX', 3600000)
  return -2
end
local clock = redis.call('TIME')  -- seats expire by Redis's clock: one clock for every instance
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local nick, arg, code = ARGV[7], ARGV[8], ARGV[9]
local nicks, members, seats, seat_of = p .. 'nicks', p .. 'members:' .. origin, p .. 'seats', p .. 'seat_of'
local aliases = p .. 'alias:' .. origin
local nkey = string.lower(nick)
local function seat_fields(value)
  local n, dropped, expires = string.match(value, '^(.*)\t(%d+)\t(%d+)$')
  return n, tonumber(dropped), tonumber(expires)
end
local function close_seat(key)
  local h = redis.call('HGET', seat_of, key)
  if h then
    redis.call('HDEL', seats, h)
    redis.call('HDEL', seat_of, key)
  end
end
-- Why this instance cannot have the nickname `key` now ('HELD', 'TAKEN'), or nil (a seat held
-- for `seat` itself, or one whose time ran out, is no obstacle; the latter is closed).
local function refusal(key, seat)
  local owner = redis.call('HGET', nicks, key)
  if owner == 'held' then
    local h = redis.call('HGET', seat_of, key)
    local value = h and redis.call('HGET', seats, h)
    local _, _, expires = seat_fields(value or '\t0\t0')
    if value and expires > now and h ~= seat then return 'HELD' end
    if h ~= seat then close_seat(key) end
  elseif owner and owner ~= origin then
    return 'TAKEN'
  end
  return nil
end
local function take(key, n, seat)
  redis.call('HSET', nicks, key, origin)
  redis.call('HSET', members, key, n)
  redis.call('HDEL', aliases, key)
  if seat ~= '' then
    close_seat(key)
    redis.call('HSET', seats, seat, n .. '\t0\t0')
    redis.call('HSET', seat_of, key, seat)
  end
end
-- An event under a name this instance's member lost while Redis had forgotten the instance
-- (announce, below) goes out under the member's new name: its sender may not know yet.
if claim ~= 'take' and claim ~= 'announce' and claim ~= 'resume' and redis.call('EXISTS', aliases) == 1
    and redis.call('HGET', nicks, nkey) ~= origin then
  local renamed = redis.call('HGET', aliases, nkey)
  if renamed then
    nick = renamed
    nkey = string.lower(renamed)
  end
end
-- An event under a name another instance's member has now, from a member of this one who left
-- while Redis had forgotten this instance (no alias): refused, not put in the other's mouth.
if (claim == '' or claim == 'release' or claim == 'rename') and nick ~= '' then
  local owner = redis.call('HGET', nicks, nkey)
  if owner and owner ~= origin and owner ~= 'held' then return redis.error_reply('NOTYOURS') end
end
if claim == 'take' then
  local why = refusal(nkey, ARGV[13])
  if why then return redis.error_reply(why) end
  take(nkey, nick, ARGV[13])
elseif claim == 'announce' then
  -- A member announced again after Redis forgot this instance (it was declared lost while cut
  -- off, or Redis restarted empty). If its seat was resumed elsewhere meanwhile, that
  -- connection is the member now (its BACK is in the stream): this one is stale.
  if ARGV[13] ~= '' and redis.call('EXISTS', p .. 'resumed:' .. ARGV[13]) == 1 then
    return redis.error_reply('MOVED')
  end
  -- If someone else took its nickname meanwhile, it goes on under the first free one of
  -- nick_2 ... nick_99 (the JOIN's arg names the old one), and what this instance publishes
  -- under the old name from now on goes out under the new one.
  local chosen = nil
  for i = 1, 99 do
    local candidate = nick
    if i > 1 then candidate = string.sub(nick, 1, 23 - #tostring(i)) .. '_' .. i end
    local ckey = string.lower(candidate)
    -- A stand-in this instance has already is another member's, unless it is this one's own
    -- (announced twice: the link broke again meanwhile).
    local ours = i > 1 and redis.call('HGET', nicks, ckey) == origin and redis.call('HGET', aliases, nkey) ~= candidate
    if not ours and not refusal(ckey, ARGV[13]) then
      chosen = candidate
      break
    end
  end
  if not chosen then return redis.error_reply('TAKEN') end
  if chosen ~= nick then
    redis.call('HSET', aliases, nkey, chosen)
    arg = nick
    nick = chosen
    nkey = string.lower(chosen)
  end
  take(nkey, nick, ARGV[13])
elseif claim == 'rename' then
  local akey = string.lower(arg)
  local owner = redis.call('HGET', nicks, akey)
  if owner and akey ~= nkey then
    return redis.error_reply(owner == 'held' and 'HELD' or 'TAKEN')
  end
  if redis.call('HGET', nicks, nkey) == origin then redis.call('HDEL', nicks, nkey) end
  redis.call('HDEL', members, nkey)
  redis.call('HSET', nicks, akey, origin)
  redis.call('HSET', members, akey, arg)
  local h = redis.call('HGET', seat_of, nkey)
  if h then
    redis.call('HDEL', seat_of, nkey)
    redis.call('HSET', seat_of, akey, h)
    redis.call('HSET', seats, h, arg .. '\t0\t0')
  end
elseif claim == 'release' then
  local hold = tonumber(ARGV[14])
  local h = redis.call('HGET', seat_of, nkey)
  local mine = redis.call('HGET', nicks, nkey) == origin
  if h and hold > 0 and mine then
    redis.call('HSET', nicks, nkey, 'held')
    redis.call('HSET', seats, h, nick .. '\t' .. now .. '\t' .. (now + hold))
  else
    if mine then redis.call('HDEL', nicks, nkey) end
    if h and mine then close_seat(nkey) end
  end
  redis.call('HDEL', members, nkey)
elseif claim == 'resume' then
  local value = redis.call('HGET', seats, ARGV[13])
  if not value then return redis.error_reply('UNKNOWN') end
  local n, dropped, expires = seat_fields(value)
  local key = string.lower(n)
  if expires > 0 and expires <= now then
    if redis.call('HGET', nicks, key) == 'held' then redis.call('HDEL', nicks, key) end
    close_seat(key)
    return redis.error_reply('EXPIRED')
  end
  local owner = redis.call('HGET', nicks, key)
  if owner and owner ~= 'held' and owner ~= origin then
    redis.call('HDEL', p .. 'members:' .. owner, key)  -- its old connection is replaced
  end
  redis.call('HSET', nicks, key, origin)
  redis.call('HSET', members, key, n)
  redis.call('HDEL', seats, ARGV[13])
  -- (For a while: an instance that announces its member again under this old seat finds that
  -- the seat has moved on.)
  redis.call('SET', p .. 'resumed:' .. ARGV[13], 1, 'PX', 600000)
  redis.call('HSET', seats, code, n .. '\t0\t0')
  redis.call('HSET', seat_of, key, code)
  nick = n
  arg = tostring(dropped > 0 and math.max(now - dropped, 0) or 0)
end
local id = redis.call('INCR', p .. 'seq')
local floor = tonumber(ARGV[12])
if id <= floor then
  id = floor + 1
  redis.call('SET', p .. 'seq', id)
end
redis.call('XADD', p .. 'stream', 'MAXLEN', '~', maxlen, '*', 'id', id, 'o', origin, 's', serial,
           'ms', ARGV[5], 'k', ARGV[6], 'n', nick, 'a', arg, 'c', code, 't', ARGV[10])
-- (Kept an hour after the last event, also when the instance is reaped: if it was only cut
-- off, it comes back knowing which of what it had in flight got in.)
redis.call('SET', p .. 'serial:' .. origin, serial, 'PX', 3600000)
return id
)lua";

// The heartbeat. ARGV: prefix, origin, ttl ms, label, "first" or "again". Returns 1 if this
// instance is not in the instance set: on its first beat it is added; on a later one it was
// reaped meanwhile (or Redis restarted empty), and it stays out until its members are
// announced again (the event script's register). Else 0.
constexpr const char* beat_script = R"lua(
local p, origin = ARGV[1], ARGV[2]
local clock = redis.call('TIME')
redis.call('SET', p .. 'alive:' .. origin, ARGV[4], 'PX', ARGV[3])
redis.call('HSET', p .. 'labels', origin, ARGV[4])
redis.call('HSET', p .. 'beats', origin, tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000))
if redis.call('SISMEMBER', p .. 'instances', origin) == 1 then return 0 end
if ARGV[5] == 'first' then redis.call('SADD', p .. 'instances', origin) end
return 1
)lua";

// The reaper: every instance whose heartbeat key has expired is removed and each of its
// members gets a LEAVE <nick> instance-lost, all in one atomic step, so exactly one survivor
// does it; a member with a seat keeps it, held for `hold` ms, so it may resume on a survivor.
// ARGV: prefix, maxlen, ms, silence (the timeout, "3.0 s": said when its last beat's time is
// unknown), floor, hold. The detail says how long it has been silent by Redis's clock (its last
// beat's time is in `beats`). Returns {instances reaped, then
// "<detail><TAB><nick>" for each member it turned into a LEAVE}.
constexpr const char* reap_script = R"lua(
local p, maxlen, ms, silence, floor = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local hold = tonumber(ARGV[6])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local reaped = 0
local lost = {}
for _, inst in ipairs(redis.call('SMEMBERS', p .. 'instances')) do
  if redis.call('EXISTS', p .. 'alive:' .. inst) == 0 then
    redis.call('SREM', p .. 'instances', inst)
    local label = redis.call('HGET', p .. 'labels', inst) or inst
    -- How long it has been silent, by Redis's clock (its last beat's time), else the timeout.
    local beat = tonumber(redis.call('HGET', p .. 'beats', inst) or '0')
    local silent = silence
    if beat > 0 and now > beat then silent = string.format('%.1f s', (now - beat) / 1000) end
    local detail = 'server ' .. label .. ' stopped answering (no heartbeat for ' .. silent .. ')'
    local m = redis.call('HGETALL', p .. 'members:' .. inst)
    for i = 1, #m, 2 do
      local h = redis.call('HGET', p .. 'seat_of', m[i])
      if redis.call('HGET', p .. 'nicks', m[i]) == inst then
        if h and hold > 0 then
          redis.call('HSET', p .. 'nicks', m[i], 'held')
          redis.call('HSET', p .. 'seats', h, m[i + 1] .. '\t' .. now .. '\t' .. (now + hold))
        else
          redis.call('HDEL', p .. 'nicks', m[i])
          if h then
            redis.call('HDEL', p .. 'seats', h)
            redis.call('HDEL', p .. 'seat_of', m[i])
          end
        end
      end
      local id = redis.call('INCR', p .. 'seq')
      if id <= floor then
        id = floor + 1
        redis.call('SET', p .. 'seq', id)
      end
      floor = id
      redis.call('XADD', p .. 'stream', 'MAXLEN', '~', maxlen, '*', 'id', id, 'o', inst, 's', 0,
                 'ms', ms, 'k', 'leave', 'n', m[i + 1], 'a', '', 'c', 'instance-lost', 't', detail)
      table.insert(lost, detail .. '\t' .. m[i + 1])
    end
    redis.call('DEL', p .. 'members:' .. inst, p .. 'alias:' .. inst)
    redis.call('HDEL', p .. 'labels', inst)
    redis.call('HDEL', p .. 'beats', inst)
    reaped = reaped + 1
  end
end
table.insert(lost, 1, reaped)
return lost
)lua";

// A clean stop: the instance leaves the set; nicknames still claimed for it are released (the
// Room published its members' LEAVEs before). ARGV: prefix, origin.
constexpr const char* bye_script = R"lua(
local p, origin = ARGV[1], ARGV[2]
local m = redis.call('HGETALL', p .. 'members:' .. origin)
for i = 1, #m, 2 do
  if redis.call('HGET', p .. 'nicks', m[i]) == origin then redis.call('HDEL', p .. 'nicks', m[i]) end
end
redis.call('DEL', p .. 'members:' .. origin, p .. 'alive:' .. origin, p .. 'alias:' .. origin, p .. 'serial:' .. origin)
redis.call('SREM', p .. 'instances', origin)
redis.call('HDEL', p .. 'labels', origin)
redis.call('HDEL', p .. 'beats', origin)
return 1
)lua";

// Where the stream ends and who is in the room there, in one atomic step; `seq` is raised to
// the floor first (so every id handed out from now on, by any instance, is above it).
// ARGV: prefix, floor. Returns {XREVRANGE's last entry (or none), seq, {nick, ...}}.
constexpr const char* snapshot_script = R"lua(
local p = ARGV[1]
local last = redis.call('XREVRANGE', p .. 'stream', '+', '-', 'COUNT', 1)
local seq = redis.call('GET', p .. 'seq') or '0'
if tonumber(seq) < tonumber(ARGV[2]) then
  seq = ARGV[2]
  redis.call('SET', p .. 'seq', seq)
end
local nicks = {}
for _, inst in ipairs(redis.call('SMEMBERS', p .. 'instances')) do
  for _, n in ipairs(redis.call('HVALS', p .. 'members:' .. inst)) do table.insert(nicks, n) end
end
return {last, seq, nicks}
)lua";

std::int64_t unix_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::uint64_t to_u64(std::string_view text) {
  std::uint64_t value = 0;
  std::from_chars(text.data(), text.data() + text.size(), value);
  return value;
}

std::string made_up_instance() {
  char host[64] = {};
  ::gethostname(host, sizeof host - 1);
  std::random_device random;
  char tag[9];
  std::snprintf(tag, sizeof tag, "%08x", random());
  return std::string(host) + "-" + std::to_string(::getpid()) + "-" + tag;
}

const char* claim_word(Backplane::Claim claim) {
  switch (claim) {
    case Backplane::Claim::take: return "take";
    case Backplane::Claim::rename: return "rename";
    case Backplane::Claim::release: return "release";
    case Backplane::Claim::resume: return "resume";
    case Backplane::Claim::announce: return "announce";
    case Backplane::Claim::register_again: return "register";
    case Backplane::Claim::none: break;
  }
  return "";
}

// An XREAD or XRANGE entry ([stream id, [field, value, ...]]) as a StreamEvent; nullopt if it
// is not one of ours (another program writing to the key).
std::optional<StreamEvent> decode(const RedisValue& entry, std::string& stream_id) {
  if (entry.type != RedisValue::Type::array || entry.elements.size() != 2) return std::nullopt;
  stream_id = entry.elements[0].str;
  const auto& fields = entry.elements[1].elements;
  StreamEvent out;
  std::optional<Event::Kind> kind;
  for (std::size_t i = 0; i + 1 < fields.size(); i += 2) {
    const std::string& f = fields[i].str;
    const std::string& v = fields[i + 1].str;
    if (f == "id") out.id = to_u64(v);
    else if (f == "o") out.origin = v;
    else if (f == "s") out.serial = to_u64(v);
    else if (f == "ms") out.time_ms = static_cast<std::int64_t>(to_u64(v));
    else if (f == "k") kind = kind_from_token(v);
    else if (f == "n") out.event.nick = v;
    else if (f == "a") out.event.arg = v;
    else if (f == "c") out.event.code = v;
    else if (f == "t") out.event.text = v;
  }
  if (!kind || out.id == 0) return std::nullopt;
  out.event.kind = *kind;
  out.event.id = out.id;
  out.event.time_ms = out.time_ms;
  return out;
}

}  // namespace

Backplane::Backplane(BackplaneOptions options, Callbacks callbacks)
    : options_([&] {
        if (options.instance.empty()) options.instance = made_up_instance();
        if (options.label.empty()) options.label = options.instance;
        return std::move(options);
      }()),
      callbacks_(std::move(callbacks)) {
  cmd_ = std::make_unique<RedisConnection>(options_.url, options_.connect_timeout, "chat-" + options_.instance + "-cmd");
  // Where the stream ends now (this instance reads what comes after) and who is in the room
  // there.
  const auto snap = cmd_->command({"EVAL", snapshot_script, "0", key(""), std::to_string(options_.id_floor)}, options_.connect_timeout);
  if (snap.is_error()) throw RedisError(cmd_->where() + ": " + snap.str);
  if (snap.elements.size() == 3) {
    const auto& last = snap.elements[0];
    if (!last.elements.empty()) {
      std::string stream_id;
      if (auto e = decode(last.elements[0], stream_id)) {
        last_stream_id_ = stream_id;
        last_id_ = e->id;
      }
    }
    last_id_ = std::max(last_id_, to_u64(snap.elements[1].str));
    for (const auto& nick : snap.elements[2].elements) start_roster_.push_back(nick.str);
  }
  start_id_ = last_id_;
  if (options_.preload > 0 && last_stream_id_ != "0-0") {
    // The recent past, up to exactly that end (XREVRANGE's end is inclusive).
    const auto past = cmd_->command({"XREVRANGE", key("stream"), last_stream_id_, "-", "COUNT",
                                     std::to_string(options_.preload)},
                                    options_.connect_timeout);
    if (past.is_error()) throw RedisError(cmd_->where() + ": " + past.str);
    for (auto it = past.elements.rbegin(); it != past.elements.rend(); ++it) {
      std::string stream_id;
      if (auto e = decode(*it, stream_id)) start_events_.push_back(std::move(*e));
    }
  }
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
  cmd_.reset();  // the thread connects (and loads the scripts) itself
}

Backplane::~Backplane() {
  stop();
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

std::string Backplane::key(const std::string& name) const { return "chat:{" + options_.room + "}:" + name; }

void Backplane::start() {
  thread_ = NamedThread("backplane", small_stack, [this] { run(); });
}

void Backplane::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  const std::uint64_t one = 1;
  if (wake_fd_ >= 0) [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
  thread_.join();
  // Nobody will answer what is still queued.
  std::deque<Outgoing> left;
  {
    std::lock_guard lock(mutex_);
    left.swap(queue_);
  }
  for (auto& out : left) {
    if (out.reply) out.reply->set_value(Result{Outcome::stopped, 0});
  }
}

void Backplane::crash() {
  {
    std::lock_guard lock(mutex_);
    crash_ = true;
    stopping_ = true;
  }
  stop();
}

bool Backplane::publish(const Event& event, Claim claim, std::string seat, std::int64_t hold_ms, bool first) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return false;
    if (queue_.size() + in_flight_count_ >= options_.buffer_max) {
      ++stats_.lost;
      ++lost_since_split_;
      return false;
    }
    Outgoing out{next_serial_++, unix_now_ms(), event, claim, nullptr, std::move(seat), hold_ms};
    if (first) {
      // Ahead of everything never sent, but behind what was in flight when the link broke (it
      // may be in the stream already, under its serial). Redis skips a serial at or below the
      // last one it applied, so the serials must still grow in the order things are sent: the
      // never-sent ones behind get new ones.
      auto at = std::find_if(queue_.begin(), queue_.end(), [](const Outgoing& o) { return !o.sent; });
      const auto index = at - queue_.begin();
      queue_.insert(at, std::move(out));
      for (auto it = queue_.begin() + index; it != queue_.end(); ++it) it->serial = next_serial_++;
    } else {
      queue_.push_back(std::move(out));
    }
    stats_.queued = queue_.size() + in_flight_count_;
  }
  const std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
  return true;
}

Backplane::Result Backplane::publish_and_wait(const Event& event, Claim claim, Millis timeout, std::string seat) {
  auto reply = std::make_shared<std::promise<Result>>();
  auto answer = reply->get_future();
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return Result{Outcome::stopped, 0};
    // Split: nobody can answer a claim now. (Before the thread's first connection, the claim
    // waits for it: the constructor has just reached Redis.)
    if (split_) return Result{Outcome::unavailable, 0};
    if (queue_.size() + in_flight_count_ >= options_.buffer_max) return Result{Outcome::unavailable, 0};
    queue_.push_back(Outgoing{next_serial_++, unix_now_ms(), event, claim, reply, std::move(seat), 0});
    stats_.queued = queue_.size() + in_flight_count_;
  }
  const std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
  if (answer.wait_for(timeout) != std::future_status::ready) return Result{Outcome::unavailable, 0, true};
  return answer.get();
}

Backplane::Stats Backplane::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

std::vector<std::string> Backplane::event_command(const Outgoing& out) const {
  return {"EVALSHA", event_sha_, "0",
          key(""), std::to_string(options_.stream_max), options_.instance, std::to_string(out.serial),
          std::to_string(out.time_ms), std::string(kind_token(out.event.kind)), out.event.nick, out.event.arg,
          out.event.code, out.event.text, claim_word(out.claim), std::to_string(last_id_), out.seat,
          std::to_string(out.hold_ms)};
}

bool Backplane::connect() {
  try {
    cmd_ = std::make_unique<RedisConnection>(options_.url, options_.connect_timeout,
                                             "chat-" + options_.instance + "-cmd");
    read_ = std::make_unique<RedisConnection>(options_.url, options_.connect_timeout,
                                              "chat-" + options_.instance + "-read");
    auto load = [&](const char* script) {
      const auto sha = cmd_->command({"SCRIPT", "LOAD", script}, options_.connect_timeout);
      if (sha.is_error()) throw RedisError(cmd_->where() + ": SCRIPT LOAD refused: " + sha.str);
      return sha.str;
    };
    event_sha_ = load(event_script);
    beat_sha_ = load(beat_script);
    reap_sha_ = load(reap_script);
    const auto ttl = options_.instance_timeout * 2 / 3;
    const auto beat = cmd_->command({"EVALSHA", beat_sha_, "0", key(""), options_.instance,
                                     std::to_string(ttl.count()), options_.label, registered_once_ ? "again" : "first"},
                                    options_.connect_timeout);
    if (beat.is_error()) throw RedisError(cmd_->where() + ": " + beat.str);
    if (registered_once_ && beat.integer == 1) {
      // Redis forgot this instance while the link was down (declared lost, or restarted
      // empty). Of what was in flight when it broke, an event at or below the last serial Redis
      // applied for this instance is in the stream already: dropped. The others never got in:
      // they are never-sent events again, so that the members' JOINs, announced again now, go
      // ahead of them (an event published under a name Redis gave away meanwhile would be
      // taken for someone else's).
      const auto applied = cmd_->command({"GET", key("serial:" + options_.instance)}, options_.connect_timeout);
      if (applied.is_error()) throw RedisError(cmd_->where() + ": " + applied.str);
      const auto last = to_u64(applied.str);
      {
        std::lock_guard lock(mutex_);
        std::erase_if(queue_, [&](const Outgoing& o) { return o.sent && o.serial <= last; });
        for (auto& o : queue_) o.sent = false;
        stats_.queued = queue_.size();
      }
      forgotten();
    }
    registered_once_ = true;
  } catch (const RedisError& e) {
    disconnect(e.what());  // (again: the next try after a longer backoff)
    return false;
  }
  cmd_pending_.clear();
  next_beat_ = Clock::now() + options_.instance_timeout / 6;
  next_reap_ = Clock::now() + options_.instance_timeout / 6;
  backoff_ = Millis(100);
  issue_xread();
  std::uint64_t lost = 0;
  {
    std::lock_guard lock(mutex_);
    lost = lost_since_split_;
    lost_since_split_ = 0;
  }
  const bool healed = !split_since_.empty();
  if (healed) {
    split_since_.clear();
    if (callbacks_.link) {
      callbacks_.link(true, lost == 0 ? std::string()
                                      : std::to_string(lost) + " events said during the split were not kept (more than " +
                                            std::to_string(options_.buffer_max) + " waited)");
    }
  }
  // After the callback: whoever sees `linked` has been told (the tests rely on that order too).
  std::lock_guard lock(mutex_);
  stats_.linked = true;
  split_ = false;
  if (healed) ++stats_.reconnects;
  return true;
}

void Backplane::disconnect(std::string why) {
  cmd_.reset();
  read_.reset();
  cmd_pending_.clear();
  // What was sent but not answered goes back to the front of the queue, in order: the event
  // script skips a serial it applied already. A claim's caller is told `unavailable` now (its
  // JOIN may or may not be in the stream: the Room treats an own event nobody waits for).
  std::deque<Outgoing> resend;
  // Refused while Redis had forgotten this instance: not applied, and sent before what is in
  // flight (the next connect() sorts them by the serial Redis applied last).
  for (auto& out : refused_) resend.push_back(std::move(out));
  refused_.clear();
  holding_ = false;
  rejoining_ = false;  // (connect() asks again)
  for (auto& out : in_flight_) {
    if (out.reply) {
      out.reply->set_value(Result{Outcome::unavailable, 0, true});
    } else {
      resend.push_back(std::move(out));
    }
  }
  in_flight_.clear();
  if (split_since_.empty()) {
    split_since_ = why;
    log_warn("backplane: ", why);
    if (callbacks_.link) callbacks_.link(false, why);
  }
  {
    std::lock_guard lock(mutex_);
    for (auto it = resend.rbegin(); it != resend.rend(); ++it) queue_.push_front(std::move(*it));
    in_flight_count_ = 0;
    stats_.linked = false;
    split_ = true;
    stats_.queued = queue_.size();
    // Claims still queued cannot be answered while split.
    for (auto it = queue_.begin(); it != queue_.end();) {
      if (it->reply) {
        it->reply->set_value(Result{Outcome::unavailable, 0});
        it = queue_.erase(it);
      } else {
        ++it;
      }
    }
  }
  next_connect_ = Clock::now() + backoff_;
  backoff_ = std::min(backoff_ * 2, Millis(2000));
}

std::string Backplane::link_error() const {
  return cmd_->where() + ": " + (cmd_->broken() ? cmd_->error() : read_->error());
}

void Backplane::issue_xread() {
  const auto block = std::max<long long>(options_.instance_timeout.count() / 6, 50);
  read_->append({"XREAD", "COUNT", "1000", "BLOCK", std::to_string(block), "STREAMS", key("stream"), last_stream_id_});
  xread_sent_ = Clock::now() + Millis(block);  // (its answer is due by then)
}

void Backplane::forgotten() {
  rejoining_ = true;  // (later heartbeats say "not in the set" too, until the register is in)
  log_warn("backplane: this instance was declared lost (or Redis restarted empty); its members are announced again");
  {
    std::lock_guard lock(mutex_);
    // Back in the set once its members' JOINs are in (the Room's announce JOINs go ahead of
    // this, as `first`).
    Outgoing again{next_serial_++, unix_now_ms(), Event{Event::Kind::comment, {}, {}, {}, {}, {}}, Claim::register_again,
                   nullptr, {}, 0};
    const auto at = std::find_if(queue_.begin(), queue_.end(), [](const Outgoing& o) { return !o.sent; });
    const auto index = at - queue_.begin();
    queue_.insert(at, std::move(again));
    for (auto it = queue_.begin() + index + 1; it != queue_.end(); ++it) it->serial = next_serial_++;
    stats_.queued = queue_.size() + in_flight_count_;
  }
  if (callbacks_.forgotten) callbacks_.forgotten();
}

void Backplane::send_events() {
  constexpr std::size_t max_in_flight = 256;
  std::deque<Outgoing> batch;
  if (holding_) {
    if (!in_flight_.empty()) return;  // answers still to come: some may be refused
    // What was refused goes right behind the register (and the announce JOINs before it), in
    // its order, with new serials (as does everything behind it: serials grow in send order).
    holding_ = false;
    std::lock_guard lock(mutex_);
    const auto reg = std::find_if(queue_.begin(), queue_.end(),
                                  [](const Outgoing& o) { return o.claim == Claim::register_again; });
    auto at = reg == queue_.end() ? queue_.begin() : std::next(reg);
    const auto index = at - queue_.begin();
    for (auto& out : refused_) {
      out.sent = false;
      at = std::next(queue_.insert(at, std::move(out)));
    }
    refused_.clear();
    for (auto it = queue_.begin() + index; it != queue_.end(); ++it) it->serial = next_serial_++;
    stats_.queued = queue_.size() + in_flight_count_;
  }
  {
    std::lock_guard lock(mutex_);
    while (!queue_.empty() && in_flight_.size() + batch.size() < max_in_flight) {
      batch.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    in_flight_count_ += batch.size();
  }
  for (auto& out : batch) {
    out.sent = true;
    cmd_->append(event_command(out));
    cmd_pending_.emplace_back(Pending::event, Clock::now());
    in_flight_.push_back(std::move(out));
  }
}

void Backplane::heartbeat() {
  const auto ttl = options_.instance_timeout * 2 / 3;
  cmd_->append({"EVALSHA", beat_sha_, "0", key(""), options_.instance, std::to_string(ttl.count()), options_.label,
                "again"});
  cmd_pending_.emplace_back(Pending::heartbeat, Clock::now());
  next_beat_ = Clock::now() + options_.instance_timeout / 6;
}

void Backplane::reap() {
  cmd_->append({"EVALSHA", reap_sha_, "0", key(""), std::to_string(options_.stream_max), std::to_string(unix_now_ms()),
                format_duration(options_.instance_timeout), std::to_string(last_id_),
                std::to_string(options_.resume_window.count())});
  cmd_pending_.emplace_back(Pending::reap, Clock::now());
  next_reap_ = Clock::now() + options_.instance_timeout / 6;
}

void Backplane::cmd_reply(Pending what, const RedisValue& reply) {
  if (reply.is_error() && reply.str.starts_with("NOSCRIPT")) {
    // Redis restarted (or flushed its scripts) under us: connect again, which loads them.
    disconnect(cmd_->where() + ": redis lost its scripts (restarted?)");
    return;
  }
  switch (what) {
    case Pending::event: {
      if (in_flight_.empty()) return;
      Outgoing out = std::move(in_flight_.front());
      in_flight_.pop_front();
      if (reply.is_error() && (reply.str == "FORGOTTEN" || reply.str == "ERR FORGOTTEN")) {
        {
          std::lock_guard lock(mutex_);
          --in_flight_count_;  // (counted again when it is sent again)
        }
        refused_.push_back(std::move(out));  // not applied: sent again behind the announce JOINs
        // Redis forgot this instance, maybe before its heartbeat's answer says so: nothing more
        // goes out until what is in flight is answered, then the members are announced again.
        holding_ = true;
        if (!rejoining_) forgotten();
        return;
      }
      if (reply.is_error() && (reply.str == "NOTYOURS" || reply.str == "ERR NOTYOURS")) {
        // Said under a name another server's member has now, by a member of this one who left
        // while Redis had forgotten this instance (its LEAVE, or what it said before): not put
        // in the other's mouth; shown here already, counted as not kept.
        log_info("backplane: not published (", out.event.nick, " is another server's member's name now): ",
                 kind_token(out.event.kind), " ", out.event.text);
        std::lock_guard lock(mutex_);
        --in_flight_count_;
        ++stats_.lost;
        ++lost_since_split_;
        stats_.queued = queue_.size() + in_flight_count_;
        return;
      }
      if (out.claim == Claim::register_again) rejoining_ = false;
      Result result;
      // (Redis 7 puts "ERR " before a script's error reply.)
      const auto refused = [&](const char* word) {
        return reply.is_error() && (reply.str == word || reply.str == std::string("ERR ") + word);
      };
      if (refused("TAKEN")) {
        result.outcome = Outcome::taken;
      } else if (refused("HELD")) {
        result.outcome = Outcome::held;
      } else if (refused("UNKNOWN")) {
        result.outcome = Outcome::unknown;
      } else if (refused("EXPIRED")) {
        result.outcome = Outcome::expired;
      } else if (refused("MOVED")) {
        // (announce: nobody waits; the BACK in the stream ends the stale member here.)
        log_info("backplane: ", out.event.nick, " is not announced again: its seat was resumed on another server");
        result.outcome = Outcome::taken;
      } else if (reply.is_error()) {
        log_warn("backplane: an event was refused: ", reply.str);
        result.outcome = Outcome::unavailable;
      } else {
        result.outcome = Outcome::published;
        result.id = reply.integer > 0 ? static_cast<std::uint64_t>(reply.integer) : 0;
      }
      {
        std::lock_guard lock(mutex_);
        --in_flight_count_;
        if (result.outcome == Outcome::published && reply.integer > 0) ++stats_.published;
        stats_.queued = queue_.size() + in_flight_count_;
      }
      if (out.reply) out.reply->set_value(result);
      return;
    }
    case Pending::heartbeat:
      if (reply.integer == 1 && !rejoining_) {
        // Every event in flight now is refused (FORGOTTEN) unless Redis applied it before it
        // forgot this instance: nothing more goes out until their answers are in, and the
        // refused ones go again behind the announce JOINs (send_events).
        holding_ = true;
        forgotten();
      }
      return;
    case Pending::reap:
      // {instances reaped, "<detail><TAB><nick>"...}: this instance's reaper was the one (a
      // trace line per member, in chatlab's "ends <nick>: ..." form: it decided the LEAVE).
      if (reply.type == RedisValue::Type::array && !reply.elements.empty() && reply.elements[0].integer > 0) {
        std::string said;  // the evidence, once per lost server
        for (std::size_t i = 1; i < reply.elements.size(); ++i) {
          const std::string& entry = reply.elements[i].str;
          const auto tab = entry.rfind('\t');
          if (tab == std::string::npos) continue;
          const std::string detail = entry.substr(0, tab);
          if (detail != said) {
            log_trace("reaper: ", detail, ": its heartbeat key expired in Redis; this instance's reaper went first");
            said = detail;
          }
          log_trace("ends ", entry.substr(tab + 1), ": instance-lost (", detail, "); its LEAVE is in the stream");
        }
        std::lock_guard lock(mutex_);
        stats_.reaped += static_cast<std::uint64_t>(reply.elements[0].integer);
      }
      return;
    case Pending::other:
      return;
  }
}

void Backplane::read_reply(const RedisValue& reply) {
  if (reply.is_error()) {
    disconnect(read_->where() + ": XREAD refused: " + reply.str);
    return;
  }
  std::vector<StreamEvent> events;
  std::uint64_t gaps = 0;
  if (reply.type == RedisValue::Type::array) {
    for (const auto& stream : reply.elements) {
      if (stream.elements.size() != 2) continue;
      for (const auto& entry : stream.elements[1].elements) {
        std::string stream_id;
        auto e = decode(entry, stream_id);
        if (!stream_id.empty()) last_stream_id_ = stream_id;
        if (!e || e->id <= last_id_) continue;  // not ours, or seen (ids only grow)
        if (last_id_ != 0 && e->id > last_id_ + 1) gaps += e->id - last_id_ - 1;
        last_id_ = e->id;
        events.push_back(std::move(*e));
      }
    }
  }
  {
    std::lock_guard lock(mutex_);
    stats_.received += events.size();
    stats_.gaps += gaps;
  }
  if (gaps > 0) log_warn("backplane: ", gaps, " room events were never read (the stream was trimmed past them)");
  if (!events.empty() && callbacks_.events) callbacks_.events(std::move(events));
}

void Backplane::settle_reap() {
  // A reap in flight: its LEAVEs may be among the events just read. Redis answered it before it
  // woke this XREAD, so the answer is here or microseconds away: take it first, so that the
  // reaper's decision is logged before the room hears of it (chatlab reads them in that order).
  const auto deadline = Clock::now() + Millis(50);
  const auto reap_pending = [this] {
    return cmd_ && std::any_of(cmd_pending_.begin(), cmd_pending_.end(),
                               [](const auto& p) { return p.first == Pending::reap; });
  };
  while (reap_pending() && Clock::now() < deadline) {
    pollfd p{cmd_->fd(), POLLIN, 0};
    if (::poll(&p, 1, 5) > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR)) != 0 && !cmd_->read_some()) return;
    take_cmd_replies();
  }
}

void Backplane::take_cmd_replies() {
  while (cmd_ && !cmd_pending_.empty()) {
    auto reply = cmd_->next_reply();
    if (!reply) return;
    const auto what = cmd_pending_.front().first;
    cmd_pending_.pop_front();
    cmd_reply(what, *reply);  // (may disconnect: cmd_ is null then)
  }
}

void Backplane::run() {
  set_thread_role("backplane");
  next_connect_ = Clock::now();
  for (;;) {
    {
      std::lock_guard lock(mutex_);
      if (stopping_) break;
    }
    const auto now = Clock::now();
    if (!cmd_ && now >= next_connect_) connect();
    if (cmd_) {
      if (now >= next_beat_) heartbeat();
      if (now >= next_reap_) reap();
      send_events();
      cmd_->flush();
      read_->flush();
      if (cmd_->broken() || read_->broken()) {
        disconnect(link_error());
        continue;
      }
    }
    pollfd fds[3] = {{wake_fd_, POLLIN, 0}, {-1, 0, 0}, {-1, 0, 0}};
    if (cmd_) {
      fds[1] = {cmd_->fd(), POLLIN, 0};
      fds[2] = {read_->fd(), POLLIN, 0};
    }
    auto next = cmd_ ? std::min(next_beat_, next_reap_) : next_connect_;
    auto wait = std::chrono::ceil<Millis>(next - Clock::now()).count();
    ::poll(fds, 3, static_cast<int>(std::clamp<long long>(wait, 0, 100)));
    if ((fds[0].revents & POLLIN) != 0) {
      std::uint64_t count = 0;
      [[maybe_unused]] auto n = ::read(wake_fd_, &count, sizeof count);
    }
    if (!cmd_) continue;
    if ((fds[1].revents & (POLLIN | POLLHUP | POLLERR)) != 0) cmd_->read_some();
    take_cmd_replies();
    if (!cmd_) continue;
    if ((fds[2].revents & (POLLIN | POLLHUP | POLLERR)) != 0) read_->read_some();
    while (cmd_ && read_->in_flight() > 0) {
      auto reply = read_->next_reply();
      if (!reply) break;
      settle_reap();
      if (!cmd_) break;
      read_reply(*reply);
      if (cmd_) issue_xread();
    }
    if (cmd_ && (cmd_->broken() || read_->broken())) {
      disconnect(link_error());
      continue;
    }
    // A Redis that stops answering with its sockets open (SIGSTOP, a hung host behind a live
    // kernel) is a broken link too, after connect_timeout.
    const auto late = Clock::now() - options_.connect_timeout;
    if (cmd_ && ((!cmd_pending_.empty() && cmd_pending_.front().second < late) || xread_sent_ < late)) {
      disconnect(cmd_->where() + ": no answer within " + format_duration(options_.connect_timeout));
    }
  }
  bool crashed = false;
  {
    std::lock_guard lock(mutex_);
    crashed = crash_;
  }
  if (crashed || !cmd_) return;
  // A clean stop: what is queued goes out first (the Room's LEAVEs), then the instance leaves.
  try {
    send_events();
    const auto deadline = Clock::now() + options_.connect_timeout;
    while (cmd_ && !cmd_pending_.empty() && Clock::now() < deadline) {
      cmd_->flush();
      pollfd p{cmd_->fd(), POLLIN, 0};
      ::poll(&p, 1, 50);
      if ((p.revents & (POLLIN | POLLHUP | POLLERR)) != 0 && !cmd_->read_some()) break;
      take_cmd_replies();
    }
    if (!cmd_ || cmd_->broken()) return;
    cmd_->command({"EVAL", bye_script, "0", key(""), options_.instance}, options_.connect_timeout);
  } catch (const RedisError& e) {
    log_warn("backplane: could not deregister: ", e.what());
  }
}

}  // namespace chat
