// LinkEvent: what chatclient's network thread (client/link.hpp) reports to the thread that
// drives it: the UI thread in interactive mode, the main thread in script mode. Plain data, no
// sockets; the screen model (client/screen_model.hpp) turns a sequence of them into what the
// panes hold, which is how the model is tested without a network; script mode
// (client/chat_client.hpp) prints them as lines.
//
// Every string in a LinkEvent that came from the network has been through sanitize()
// (client/sanitize.hpp) before the event was queued.
#pragma once

#include "common/protocol.hpp"
#include "common/units.hpp"
#include "common/wording.hpp"

#include <string>

namespace chat {

struct LinkEvent {
  enum class Kind {
    connecting,  // a connection attempt starts: text = "host:port", attempt = 0 for the
                 // first, then 1, 2, ... for the retries after it failed or was lost
    joined,      // WELCOME: nick = the nickname we have; rejoin = after a lost connection;
                 // text = the nickname we asked for when the server gave us another (ghost)
    server,      // a line from the server: event (never WELCOME, PING or PONG)
    notice,      // something the network thread has to say: text; error = show it as one
    unreachable, // a connection attempt failed and no retry follows: text = "cannot connect
                 // to host:port: why" (a retry says it itself)
    refused,     // the nickname was refused at the first join: event (the ERROR); the user
                 // picks another with /nick, or with LinkOptions::give_up_when_refused the
                 // Link ends (`ended`, error)
    lost,        // the connection ended unexpectedly: event.code = the cause token
                 // (event.kind leave) or the server's BYE reason (event.kind bye),
                 // event.text = its detail (lost_words() says it for people)
    retry,       // the next attempt comes in `delay`: attempt = its number (1, 2, ...);
                 // text = why the last attempt could not connect, or "" after a loss
    rtt,         // a PONG answered our PING after `delay`
    ended,       // the network thread is done (after /quit, or a loss without reconnecting);
                 // error = the session ended because the server was lost
  };
  Kind kind = Kind::notice;
  Event event{Event::Kind::comment, {}, {}, {}, {}, {}};
  std::string text;
  std::string nick;
  bool rejoin = false;
  bool error = false;
  int attempt = 0;
  Millis delay{0};
};

// A `lost` event in words (common/wording.hpp): "the server has stopped", "the server closed
// the connection"; `verbose` adds the protocol's detail: " [shutdown: server shutting down]".
inline std::string lost_words(const LinkEvent& lost, bool verbose) {
  const Event& e = lost.event;
  std::string words = e.kind == Event::Kind::bye ? wording::bye(e.code, e.text) : wording::lost(e.code, e.text);
  if (verbose) words += wording::details(e.code, e.text);
  return words;
}

}  // namespace chat
