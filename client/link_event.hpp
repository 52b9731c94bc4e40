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

#include <string>

namespace chat {

struct LinkEvent {
  enum class Kind {
    connecting,  // a connection attempt starts: text = "host:port", attempt = 1, 2, ...
    joined,      // WELCOME: nick = the nickname we have; rejoin = after a lost connection;
                 // text = the nickname we asked for when the server gave us another (ghost)
    server,      // a line from the server: event (never WELCOME, PING or PONG)
    notice,      // something the network thread has to say: text; error = show it as one
    unreachable, // a connection attempt failed: text = "cannot connect to host:port: why"
    refused,     // the nickname was refused at the first join: event (the ERROR); the user
                 // picks another with /nick, or with LinkOptions::give_up_when_refused the
                 // Link ends (`ended`, error)
    lost,        // the connection ended unexpectedly: text = "<cause>: <detail>"
    retry,       // the next attempt comes in `delay`: attempt = its number
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

}  // namespace chat
