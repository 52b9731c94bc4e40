// ChatClient: chatclient's script mode, without a terminal. A Link (client/link.hpp) does all
// the network work (connect, HELLO, heartbeat, PONGs, and with `reconnect` the reconnecting);
// ChatClient relays lines typed on an input fd to it as commands and prints its LinkEvents as
// readable lines, until the user quits or the server goes away; run() returns the process exit
// code.
//
// Threads:
//   - the "main" thread creates the ChatClient, calls run() once and destroys it. Inside run()
//     it starts the Link, then polls the input fd and the Link's event fd (never a read that
//     could block forever), turns typed lines into commands for the Link, and prints events.
//     It is the only thread that prints, and the only one that touches everything below but
//     link_'s internals.
//   - the Link's network thread, started by run() and stopped and joined when link_ goes (at
//     the end of run() or in the destructor). It never prints: it reports through LinkEvents.
//
// History (docs/protocol.md, "Ids, resume and history"): lines from the server's history are
// printed with the time they were said, between separator lines that are not stamped:
//   --- earlier messages (12) ---          (on joining: the last messages before we came)
//   --- away 41 s, 12 messages you missed ---   (after a resume: where the missed part starts)
//   --- now ---
// Over TLS the connection is announced before the welcome ("*** connected to HOST:PORT over
// TLSv1.3 ... (verified certificate)"); what is said about a certificate that was refused or
// pinned just now goes to `err`, line by line, as ssh says it.
// `/history [n]` prints the n messages (50) before the oldest one printed so far, between
// "--- earlier messages (n) ---" and "--- end of earlier messages ---"; `/search <words>`
// between "--- found (n) ---" and "--- end of search ---".
//
// Exit codes: 0 after the user quit (stdin EOF or /quit); 1 when the server could not be
// reached, refused the nickname or the server's certificate, or went away (printed once, in words: "*** disconnected: the
// server has stopped"; with `verbose` the cause and detail follow in brackets). With `reconnect`
// a lost server is announced the same way, then the Link tries again.
#pragma once

#include "client/link.hpp"
#include "common/line_framer.hpp"
#include "common/protocol.hpp"
#include "common/units.hpp"

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <thread>

namespace chat {

inline constexpr int exit_ok = 0;
inline constexpr int exit_failure = 1;
inline constexpr int exit_usage = 2;

struct ClientOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 15600;
  std::vector<ServerAddress> servers;  // --host a,b,c: fail over in turn (LinkOptions::servers)
  std::string nick;
  std::string password;           // the room's (--password-file, --ask-password); "": none
  KeepaliveConfig keepalive{};    // on the socket, with TCP_USER_TIMEOUT (apply_keepalive)
  Millis ping_interval{15'000};   // quiet time before we PING the server; 0: no heartbeat
  Millis ping_timeout{10'000};    // after our PING, how long the server may stay silent
  std::size_t max_line = 4096;    // longest line, either way, not counting LF
  Millis quit_wait{2'000};        // after QUIT, how long to wait for BYE / the close
  bool reconnect = false;         // a lost server: reconnect with backoff instead of exit 1
  bool verbose = false;           // show the protocol's detail after each leave, goodbye, refusal
  bool tls = false;               // --tls (LinkOptions::tls)
  bool tls_pin = false;           // --tls-pin: trust on first use
  std::string known_servers;      // --known-servers FILE; "": the default
};

// The warning chatclient prints when the room password would cross the network in clear
// text: a password, no TLS, and a server that is not this machine (localhost, 127.x, ::1).
std::optional<std::string> clear_text_password_warning(const ClientOptions& options);

// The Link settings that `options` name, as interactive mode uses them; script mode adds its
// own (no round-trip PINGs, a refused nickname ends the session).
LinkOptions link_options(const ClientOptions& options);

class ChatClient {
 public:
  // `input_fd` (not owned) is read for typed lines; events go to `out`, start-up failures to
  // `err`. Both streams must outlive the ChatClient.
  ChatClient(ClientOptions options, int input_fd, std::ostream& out, std::ostream& err);
  // Stops and joins the Link's thread if run() left through an exception (via link_).
  ~ChatClient() = default;

  ChatClient(const ChatClient&) = delete;
  ChatClient& operator=(const ChatClient&) = delete;

  // Main thread only, once. Runs the whole session; returns the exit code.
  int run();

 private:
  // ---- main thread only, all of it ----
  void read_input();                          // input_fd_ is readable
  bool handle_input(std::string_view line);   // false: the user quit
  void quit(std::string reason);
  void handle(const LinkEvent& event);        // prints it, updates the state below
  void print(std::string_view line);
  void print_stamped(std::string_view text);
  void print_event(const Event& event, std::optional<std::size_t> online = {});
  void print_history(const LinkEvent& event);  // a history block's start, line or end
  void note_id(std::uint64_t id);
  void assert_main_thread() const;

  const ClientOptions options_;
  const int input_fd_;
  std::ostream& out_;
  std::ostream& err_;
  std::thread::id main_thread_;  // set at the top of run(); for assert_main_thread()

  // Typed lines are read only once joined: nothing is sent to a server that is about to
  // refuse us, and a script's output starts with the welcome. While reconnecting (after a
  // first join) stdin is still read, so that its end is noticed (a script that closes stdin
  // during an outage gets its exit), and the commands typed meanwhile are held, at most
  // max_held_bytes of them, and sent after the rejoin.
  bool joined_ = false;
  bool ever_joined_ = false;
  std::string server_;  // main thread: "host:port" of the last connection attempt
  std::deque<Command> held_;          // typed while reconnecting
  std::size_t held_bytes_ = 0;
  static constexpr std::size_t max_held_bytes = 64 * 1024;
  bool input_done_ = false;          // stdin EOF or /quit: QUIT was asked of the Link
  std::optional<int> exit_code_;     // set by the Link's `ended`
  LineFramer input_;                 // typed bytes into lines

  // History (see above): the block being printed, how many of its lines were printed, the
  // RESUMED line's time away (for the marker), and the oldest id printed (what /history asks
  // before).
  History block_ = History::none;
  std::size_t block_lines_ = 0;
  std::string away_ms_;
  std::uint64_t oldest_id_ = 0;

  // The room as the server described it, keyed by fold_nick(), for the "(N online)" counts.
  std::map<std::string, std::string> users_;
  bool users_known_ = false;

  // Last member: destroyed first, so its thread is joined before the rest goes.
  std::optional<Link> link_;
};

}  // namespace chat
