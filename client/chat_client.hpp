// ChatClient: chatclient's logic, without a terminal. It connects, joins with HELLO, then relays
// lines typed on an input fd to the server and prints the server's events, until the user
// quits or the server goes away; run() returns the process exit code.
//
// Threads:
//   - the "main" thread creates the ChatClient, calls run() once and destroys it. Inside run()
//     it connects, then reads the input fd (poll(2) on it plus wakeup_, never a read that could
//     block forever) and sends the typed commands.
//   - one network thread (network_, a std::jthread started and joined by run()) reads the
//     socket, prints events, answers the server's PINGs and runs the heartbeat with poll(2)
//     timeouts. It is stopped by request_stop() + shutdown() of the socket (never close() from
//     another thread) and joined by the main thread.
// Both threads print and both write to the socket: see write_mutex_ and out_mutex_.
// Lock order: write_mutex_ before state_mutex_ and out_mutex_ (a stalled send reports the loss
// while holding it); state_mutex_ and out_mutex_ are never held together.
//
// Exit codes: 0 after the user quit (stdin EOF or /quit); 1 when the server could not be
// reached, refused the nickname, or went away (printed as "*** connection to server lost
// (<cause>: <detail>)", cause one of closed, reset, timeout, no-pong, error or a BYE reason).
#pragma once

#include "common/net.hpp"
#include "common/protocol.hpp"
#include "common/units.hpp"

#include <asio.hpp>

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <ostream>
#include <stop_token>
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
  std::string nick;
  KeepaliveConfig keepalive{};    // on the socket, with TCP_USER_TIMEOUT (apply_keepalive)
  Millis ping_interval{15'000};   // quiet time before we PING the server; 0: no heartbeat
  Millis ping_timeout{10'000};    // after our PING, how long the server may stay silent
  std::size_t max_line = 4096;    // longest line, either way, not counting LF
  Millis quit_wait{2'000};        // after QUIT, how long to wait for BYE / the close
};

class ChatClient {
 public:
  // `input_fd` (not owned) is read for typed lines; events go to `out`, start-up failures to
  // `err`. Both streams must outlive the ChatClient.
  ChatClient(ClientOptions options, int input_fd, std::ostream& out, std::ostream& err);
  // Stops and joins the network thread if run() left through an exception.
  ~ChatClient();

  ChatClient(const ChatClient&) = delete;
  ChatClient& operator=(const ChatClient&) = delete;

  // Main thread only, once. Runs the whole session; returns the exit code.
  int run();

 private:
  // Shared session state; all of it guarded by state_mutex_.
  struct State {
    bool joined = false;             // WELCOME seen
    bool quitting = false;           // we sent QUIT: the end of the connection is expected
    std::optional<int> exit_code;    // set once, by whoever ends the session
  };

  // ---- main thread ----
  bool connect();
  bool wait_until_joined();  // false if the session ended first
  void input_loop();
  bool handle_input(std::string_view line);  // false: the user quit
  void quit(std::string_view reason);
  void stop_network();
  void assert_main_thread() const;

  // ---- network thread ----
  void network_main(std::stop_token stop);
  void read_loop(std::stop_token stop);
  bool handle_server_line(std::string_view line);  // false: the session is over
  void refused_at_join(const Event& error);

  // ---- either thread ----
  void lost(std::string_view cause, std::string_view detail);  // ends the session, announced
  std::error_code send_line(std::string_view line);
  bool ended();  // the session's exit code is decided
  void print(std::string_view line);
  void print_stamped(std::string_view text);
  void print_event(const Event& event, std::optional<std::size_t> online = {});

  const ClientOptions options_;
  const int input_fd_;
  std::thread::id main_thread_;  // set at the top of run(); for assert_main_thread()

  // Connected by the main thread before network_ starts and closed by it after the join.
  // In between the network thread reads it, both threads write it (under write_mutex_) and
  // the main thread may shutdown() it, which Asio allows concurrently with a read.
  asio::io_context io_;
  asio::ip::tcp::socket socket_;
  // Serialises writes to socket_: the main thread sends typed commands, the network thread
  // sends PING and PONG, and each line must reach the wire whole.
  std::mutex write_mutex_;

  // Guards out_ and err_: both threads print, and each line must come out whole.
  std::mutex out_mutex_;
  std::ostream& out_;  // guarded by out_mutex_
  std::ostream& err_;  // guarded by out_mutex_

  std::mutex state_mutex_;
  State state_;  // guarded by state_mutex_
  // Signalled by the network thread whenever state_ changes (joined, ended); the main thread
  // polls it next to the input fd.
  Wakeup wakeup_;

  // Network thread only: the room as the server described it, keyed by fold_nick(), for the
  // "(N online)" counts, and our own nickname (it changes with NICK).
  std::map<std::string, std::string> users_;
  bool users_known_ = false;
  std::string my_nick_;

  // Last member: destroyed first, so the thread never outlives what it uses.
  std::jthread network_;
};

}  // namespace chat
