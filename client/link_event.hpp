// LinkEvent: what chatclient's network thread (client/link.hpp) reports to the thread that
// drives it: the UI thread in interactive mode, the main thread in script mode. Plain data, no
// sockets; the screen model (client/screen_model.hpp) turns a sequence of them into what the
// panes hold, which is how the model is tested without a network; script mode
// (client/chat_client.hpp) prints them as lines.
//
// Every string in a LinkEvent that came from the network has been through sanitize()
// (client/sanitize.hpp) before the event was queued.
//
// Lines from the server's history (docs/protocol.md, "Ids, resume and history") arrive as
// ordinary `server` events marked with the block they belong to (History); the helpers below
// word the separators and the resume marker the same way in every front end.
#pragma once

#include "common/protocol.hpp"
#include "common/render.hpp"
#include "common/units.hpp"
#include "common/wording.hpp"

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace chat {

// Which block of the server's history a line belongs to (docs/protocol.md, "Ids, resume and
// history"): `none` for a line that happens now (live), `recent` for the last messages before
// we joined, `missed` for what was said while we were away (after a resume), `before` for an
// answer to HISTORY BEFORE (scroll-back), `search` for an answer to SEARCH.
enum class History { none, recent, missed, before, search };
inline std::string_view to_string(History history) {
  switch (history) {
    case History::none: return "live";
    case History::recent: return "recent";
    case History::missed: return "missed";
    case History::before: return "before";
    case History::search: return "search";
  }
  return "?";
}

// "recent" -> History::recent; anything unknown is a reply shown where it arrives: `search`.
inline History history_from(std::string_view code) {
  if (code == "recent") return History::recent;
  if (code == "missed") return History::missed;
  if (code == "before") return History::before;
  return History::search;
}

struct LinkEvent {
  enum class Kind {
    connecting,  // a connection attempt starts: text = "host:port", attempt = 0 for the
                 // first, then 1, 2, ... for the retries after it failed or was lost
    joined,      // WELCOME: nick = the nickname we have; rejoin = after a lost connection;
                 // text = the nickname we asked for when the server gave us another (ghost)
    resumed,     // RESUMED: the server kept our seat while we were away and we have it back.
                 // nick = the seat's nickname; event = the RESUMED line (event.arg = the
                 // milliseconds away, event.text = how many events we missed); rejoin = true.
                 // The missed events follow as `server` events marked History::missed.
    server,      // a line from the server: event (never WELCOME, TOKEN, RESUMED, PING or PONG).
                 // `history` says which block it belongs to; a block comes as its start
                 // (event.kind history, arg = its count), its lines, its end (history_end).
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
                 // text = why the last attempt could not connect, or "" after a loss;
                 // server = "host:port" it goes to when there are several (failover), else ""
    rtt,         // a PONG answered our PING after `delay`
    secured,     // (TLS) the handshake finished and the certificate was trusted: server =
                 // "host:port", tls = the engine's describe() ("TLSv1.3 TLS_AES_256_GCM_SHA384"),
                 // text = why it was trusted ("verified certificate", "pinned certificate
                 // SHA256:..."); secured_words() says it. Before the join.
    certificate, // (TLS) what to say about the server's certificate, in `lines`: with error, it
                 // was refused (an unverified certificate without --tls-pin, or one that differs
                 // from the pinned one) and `ended` follows; without, it was pinned just now
                 // (trust on first use). Front ends show every line, as it is.
    ended,       // the network thread is done (after /quit, or a loss without reconnecting);
                 // error = the session ended because the server was lost
  };
  Kind kind = Kind::notice;
  Event event{Event::Kind::comment, {}, {}, {}, {}, {}};
  std::string text;
  std::string nick;
  std::string server;  // retry, secured: see above
  std::string tls;     // secured: see above
  std::vector<std::string> lines;  // certificate: see above
  bool rejoin = false;
  bool error = false;
  int attempt = 0;
  Millis delay{0};
  History history = History::none;  // server: the history block the line belongs to
};

// The marker every client shows where, after a resume, the part we missed starts: "away 41 s,
// 12 messages you missed" / "away 41 s, nothing you missed" (common/render.hpp's words), from
// the RESUMED line's milliseconds and count.
// "reconnecting in 1.0 s" / "reconnecting to b:15602 in 1.0 s" for a retry after a loss.
inline std::string reconnecting_words(const LinkEvent& retry) {
  return "reconnecting " + (retry.server.empty() ? std::string() : "to " + retry.server + " ") + "in " +
         format_duration(retry.delay);
}
// "; trying again in 1.0 s" / "; trying b:15602 in 1.0 s" after an attempt that failed.
inline std::string trying_again_words(const LinkEvent& retry) {
  return "; trying " + (retry.server.empty() ? std::string("again") : retry.server) + " in " +
         format_duration(retry.delay);
}

// "connected to 127.0.0.1:15600 over TLSv1.3 TLS_AES_256_GCM_SHA384 (pinned certificate
// SHA256:...)" for a `secured` event.
inline std::string secured_words(const LinkEvent& secured) {
  return "connected to " + secured.server + " over " + secured.tls + " (" + secured.text + ")";
}

inline std::string resume_marker(std::string_view away_ms, std::string_view missed) {
  return "away " + away_time(away_ms) + ", " + missed_words(missed);
}

// The separator that opens a history block (`start`: the HISTORY line), as every client shows
// it: "--- earlier messages (12) ---", "--- found (7) ---", and for what we missed the resume
// marker, "--- away 41 s, 12 messages you missed ---" (`away_ms` from the RESUMED line; empty:
// not known, the plain words then). A block that is partial says so.
inline std::string history_start_line(const Event& start, std::string_view away_ms = {}) {
  if (start.code == "missed" && !away_ms.empty()) {
    return "--- " + resume_marker(away_ms, start.arg) +
           (start.text.empty() ? "" : " (older ones are no longer kept)") + " ---";
  }
  return render_event(start).value_or("---");
}

// The separator that closes a block: "--- now ---" after what was said before now (recent,
// missed), "--- end of search ---", "--- end of earlier messages ---" (script mode prints an
// answer to /history below everything else).
inline std::string history_end_line(const Event& end) {
  if (end.code == "before") return "--- end of earlier messages ---";
  return render_event(end).value_or("---");
}

// How many earlier messages PageUp, /more and /history ask for at a time.
inline constexpr std::size_t history_page = 50;

// A `lost` event in words (common/wording.hpp): "the server has stopped", "the server closed
// the connection"; `verbose` adds the protocol's detail: " [shutdown: server shutting down]".
inline std::string lost_words(const LinkEvent& lost, bool verbose) {
  const Event& e = lost.event;
  std::string words = e.kind == Event::Kind::bye ? wording::bye(e.code, e.text) : wording::lost(e.code, e.text);
  if (verbose) words += wording::details(e.code, e.text);
  return words;
}

}  // namespace chat
