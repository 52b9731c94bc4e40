// Commands: what a client's lines do. First the handshake (the line that picks protocol or text
// mode, then the nickname), then every command of docs/protocol.md, until QUIT.
//
// One per session, owned by it, used by its reader thread only: the reader's framing turns
// bytes into lines, and each line comes here. It acts through the Room (everything others see)
// and the Session (replies to this client, the end of the session). It never sees bytes, so it
// is the same for a TCP client and a browser.
#pragma once

#include "common/protocol.hpp"

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace chat {

struct ArchivedEvent;
class Room;
class RoomPassword;
class Session;

class Commands {
 public:
  Commands(Session& session, Room& room) : session_(session), room_(room) {}
  Commands(const Commands&) = delete;
  Commands& operator=(const Commands&) = delete;

  // One line from the client, without its newline. Reader thread.
  void handle_line(std::string_view line);

 private:
  void handshake(std::string_view line);
  // The room password (--password-file): true if this connection may join. Else the client is
  // told why (ERROR bad-password). A password given is checked after a wait that grows with
  // the wrong ones from its address (Guesses), before anything about the nickname is said.
  // Reader thread; a check may take ~100 ms (scrypt), the wait up to 16 s.
  bool authorized(const std::optional<std::string>& password);
  bool authorized_once();  // authorized(pass_), then pass_ is wiped and forgotten
  // `password` against `expected`, after the wait its address has earned (Guesses); a wrong
  // one is counted and logged. Reader thread.
  bool password_matches(RoomPassword& expected, const std::string& password);
  void oper(const std::string& password);                          // OPER, /oper
  // True for an operator; else the client is told ERROR not-operator, naming `verb` as it was
  // typed (KICK, or /kick in text mode).
  bool may(std::string_view verb);
  void kick(const std::string& nick, const std::string& reason);  // KICK, /kick
  void ban(const Command& cmd);                                    // BAN, /ban
  void unban(const std::string& nick_or_address);                  // UNBAN, /unban
  void list_bans();                                                // BANS, /bans
  // ERROR banned's detail when `nick` is banned now ("bob until 14:05"), else nullopt.
  std::optional<std::string> nick_banned(std::string_view nick);
  // The same for this connection's address ("10.0.0.5 until 14:05"): banned since it came in.
  std::optional<std::string> address_banned();
  void command(const Command& cmd);
  void join(std::string_view nick);
  void resume(const Command& cmd);
  void help();
  // HISTORY BEFORE and SEARCH: they read the archive on this thread (maybe from disk).
  void history(const Command& cmd);
  void search(const std::string& words);
  // A HISTORY block (header, the events, HISTORY END), tagged; in text mode as text lines.
  void send_block(std::string_view what, const std::vector<ArchivedEvent>& events);

  static constexpr std::size_t max_search_results = 50;

  Session& session_;
  Room& room_;
  // The reader thread's own:
  std::optional<std::string> pass_;  // PASS <password>, for the HELLO or RESUME after it
  bool authorized_ = false;          // the password was right (or the room has none)
  bool operator_ = false;            // OPER with the operators' password: may KICK, BAN, UNBAN, BANS
  std::string waiting_nick_;         // text mode: a nickname typed, waiting for the password line
};

}  // namespace chat
