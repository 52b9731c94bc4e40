// What goes over the wire in chatbench's side-by-side modes: the four dialects it speaks
// (this project's protocol, ncat --chat's raw lines, IRC as ngircd speaks it, and the Asio chat
// example's length-prefixed frames) and the benchmark message every one of them carries.
//
// Pure functions and immutable objects, no sockets: the event loop (swarm.hpp) feeds received
// bytes in and sends what comes out. Safe from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace chat::bench {

enum class Protocol {
  chat,  // this project: HELLO / SAY, MSG <nick> <text>, JOIN <nick>, PING / PONG
  line,  // ncat --chat: raw lines in, "<userN> line" out to the others, no nicknames
  irc,   // NICK / USER / JOIN #chat / PRIVMSG #chat :text (ngircd)
  asio,  // the Asio chat example: a 4-digit decimal length, then the body (at most 512 bytes)
};
std::string_view to_string(Protocol protocol);
std::optional<Protocol> protocol_from(std::string_view name);

// ---- the benchmark message --------------------------------------------------------------------
//
//   <tag>:<sender>:<seq>:<sent us>:<filler>
//
// tag: 6 hex digits, one per run, so lines from an earlier run (the Asio example replays its
// last 100 messages to a newcomer) are recognised and ignored; sender: the sending client's
// index; seq: 0, 1, 2 ... per sender; sent us: microseconds since the run began, when the
// message was handed to the socket; filler: letters that depend on seq and position, up to
// exactly `size` bytes. Any change to a message (cut, merged, garbled) fails decode_payload.
struct Payload {
  std::uint32_t tag = 0;
  std::uint32_t sender = 0;
  std::uint32_t seq = 0;
  std::uint64_t sent_us = 0;
};

// The smallest and largest --size that fit every dialect (IRC and Asio cap a line at 512).
inline constexpr std::size_t min_payload_size = 48;
inline constexpr std::size_t max_payload_size = 400;

// Appends the payload text, `size` bytes, to `out`.
void encode_payload(std::string& out, const Payload& p, std::size_t size);

enum class PayloadCheck { ok, stale, corrupt };
// Decodes `text`, which must be exactly what encode_payload wrote with `tag` and `size`. A
// well-formed message of another tag (of any size) is stale; anything else is corrupt.
PayloadCheck decode_payload(std::string_view text, std::uint32_t tag, std::size_t size, Payload& out);

// ---- received frames --------------------------------------------------------------------------

// One frame (a line, or an Asio message) as a client of the benchmark understands it.
struct Seen {
  enum class Kind {
    other,          // nothing the benchmark needs (MOTD, remarks, ...)
    message,        // a chat message: payload, from
    welcomed,       // registered (chat WELCOME, IRC 001): the client may now join / is joining
    roster,         // names of the members, self included (chat USERS, IRC 353): count
    roster_end,     // the member list is complete: the client is in the room (IRC 366)
    member_joined,  // someone joined (chat JOIN, IRC JOIN, ncat "is connected as"); before we are
                    // in the room it may be our own arrival, and does not count
    member_left,    // someone left (chat LEAVE, IRC PART / QUIT, ncat announce): text
    ping,           // the server checks we are alive: answer with pong(token)
    refused,        // the server refused or ended us (chat BYE, IRC ERROR / 433): text
    error,          // the server refused one line (chat ERROR): fatal before joining only
    stats,          // chatserver's STATS reply: text
  };
  Kind kind = Kind::other;
  std::string_view payload;  // message
  std::string_view from;     // message: who sent it, as the server names them
  std::size_t count = 0;     // roster: names on this line
  std::string_view token;    // ping: what the answer must carry
  std::string_view text;     // the whole frame
};

// A dialect: how to join, how to send, and how to read what arrives. Implementations are
// stateless; where a dialect needs per-client state (IRC registration), the Seen kinds carry it
// to the caller.
class Dialect {
 public:
  virtual ~Dialect() = default;
  virtual Protocol protocol() const = 0;
  // Bytes sent as soon as the connection is up (nothing for dialects without nicknames).
  virtual std::string greeting(std::string_view nick) const = 0;
  // Bytes sent once the server welcomed the client (IRC: JOIN #chat); empty: nothing.
  virtual std::string after_welcome() const { return {}; }
  // Does the client count as in the room as soon as it is connected (no handshake at all)?
  virtual bool joined_on_connect() const { return false; }
  // Is the roster complete with the first roster line (chat USERS) or only at roster_end (IRC)?
  virtual bool roster_in_one_line() const { return true; }
  // Does the server welcome a client before its roster (chat WELCOME, IRC 001)?
  virtual bool welcomes() const { return true; }
  // Does the sender receive its own message back?
  virtual bool echoes() const = 0;
  // Can the benchmark tell who sent a message from the frame (chat and IRC: the nickname)?
  virtual bool names_senders() const { return true; }
  // Appends the frame that sends `payload` to the room.
  virtual void encode_message(std::string& out, std::string_view payload) const = 0;
  // The frame that asks a chatserver for its STATS line (empty: this dialect has none).
  virtual std::string stats_request() const { return {}; }
  // Finds the next complete frame at the start of `in`: its length including the delimiter in
  // `consumed`, the frame itself in `frame`. False if `in` holds no complete frame yet. A frame
  // longer than `max_frame` makes `consumed` 0 and returns true: the caller ends the client.
  virtual bool next_frame(std::string_view in, std::size_t max_frame, std::string_view& frame,
                          std::size_t& consumed) const;
  // What a received frame means. (Seen holds views into `frame` only: nothing to allocate or
  // free on the path every delivered message takes.)
  virtual Seen classify(std::string_view frame) const = 0;
  // The answer to a ping carrying `token`.
  virtual std::string pong(std::string_view token) const { return std::string(token); }
};

// The dialect for `protocol` (a static object; never null).
const Dialect& dialect_for(Protocol protocol);

}  // namespace chat::bench
