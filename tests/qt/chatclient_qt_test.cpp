// chatclient-qt against a real chatserver on 127.0.0.1 port 0, with Qt's offscreen platform:
// joining, the user list following JOIN / NICK / LEAVE, typing (QTest key clicks), colours,
// text that looks like HTML shown as it is, a very long line, Ctrl+L, the connect dialog, and a
// server that stops and comes back; over TLS against `openssl s_server`, a certificate refused
// and one pinned on first use.
#define CATCH_CONFIG_RUNNER
#include "client/qt/chat_window.hpp"
#include "client/qt/connect_dialog.hpp"
#include "tests/client/fake_server.hpp"
#include "tests/process/server_process.hpp"
#include "tests/qt/qt_support.hpp"
#include "tests/support/line_client.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/tls_servers.hpp"

#include <catch2/catch.hpp>

#include <QApplication>
#include <QCheckBox>
#include <QDialogButtonBox>
#include <QLabel>
#include <QLineEdit>
#include <QListWidget>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QScrollBar>
#include <QRegularExpression>
#include <QSettings>
#include <QSpinBox>
#include <QAbstractTextDocumentLayout>
#include <QTextBlock>
#include <QTextCursor>
#include <QTextDocument>

#include <csignal>
#include <memory>

using namespace chat::test;
using chat::qt::ChatWindow;

namespace {

chat::LinkOptions options_for(std::uint16_t port, const std::string& nick) {
  chat::LinkOptions o;
  o.port = port;
  o.nick = nick;
  o.backoff.initial = chat::Millis{200};  // the server comes back quickly in these tests
  o.backoff.cap = chat::Millis{1000};
  o.max_line = 1 << 20;  // the long-line test's server allows 64 KiB lines
  return o;
}

QStringList user_names(const ChatWindow& w) {
  QStringList names;
  for (int i = 0; i < w.users()->count(); ++i) names << w.users()->item(i)->text();
  return names;
}

// The pane's block that contains `text`, or an invalid block.
QTextBlock block_with(const ChatWindow& w, const QString& text) {
  for (auto b = w.messages()->document()->lastBlock(); b.isValid(); b = b.previous()) {
    if (b.text().contains(text)) return b;
  }
  return {};
}

bool pane_has(const ChatWindow& w, const QString& text) { return block_with(w, text).isValid(); }

// A window joined as `nick` on `port`, shown, with the focus where the user meets it.
std::unique_ptr<ChatWindow> joined_window(std::uint16_t port, const std::string& nick) {
  auto w = std::make_unique<ChatWindow>(options_for(port, nick));
  w->show();
  w->activateWindow();
  REQUIRE(wait_until([&] { return user_names(*w).contains(QString::fromStdString(nick)); }, patience));
  return w;
}

std::unique_ptr<LineClient> join(std::uint16_t port, const std::string& nick) {
  auto c = std::make_unique<LineClient>(port);
  REQUIRE(c->send_line("HELLO " + nick));
  REQUIRE(c->expect_line("WELCOME " + nick, patience));
  return c;
}

void type_line(ChatWindow& w, const QString& text) {
  QTest::keyClicks(w.input(), text);
  QTest::keyClick(w.input(), Qt::Key_Return);
}

}  // namespace

TEST_CASE("chatclient-qt joins, the user list follows JOIN, NICK and LEAVE, and typed lines reach the others",
          "[qt]") {
  ServerProcess server({"--log-level", "warn"});
  auto w = joined_window(server.port(), "alice");
  CHECK(w->focusWidget() == w->input());  // the keyboard starts in the input line
  CHECK(w->status_text().contains("connected"));
  CHECK(pane_has(*w, "welcome, alice"));

  auto bob = join(server.port(), "bob");
  CHECK(wait_until([&] { return user_names(*w) == QStringList{"alice", "bob"}; }, patience));
  CHECK(w->findChild<QLabel*>("users_count")->text() == "Online (2)");
  CHECK(pane_has(*w, "bob joined"));
  auto carol = join(server.port(), "Carol");
  CHECK(wait_until([&] { return user_names(*w) == QStringList{"alice", "bob", "Carol"}; }, patience));  // ignoring case

  REQUIRE(bob->send_line("NICK bobby"));
  CHECK(wait_until([&] { return user_names(*w) == QStringList{"alice", "bobby", "Carol"}; }, patience));

  type_line(*w, "hello everyone");
  CHECK(bob->expect_line("MSG alice hello everyone", patience));
  CHECK(wait_until([&] { return pane_has(*w, "<alice> hello everyone"); }, patience));
  CHECK(w->input()->text().isEmpty());

  // Up brings back what was typed, Down the empty line again.
  QTest::keyClick(w->input(), Qt::Key_Up);
  CHECK(w->input()->text() == "hello everyone");
  QTest::keyClick(w->input(), Qt::Key_Down);
  CHECK(w->input()->text().isEmpty());

  // The same commands as the terminal client: /me, /msg, @nick, /nick, /who.
  type_line(*w, "/me waves");
  CHECK(bob->expect_line("ME alice waves", patience));
  type_line(*w, "@Carol psst");
  CHECK(carol->expect_line("PRIV alice Carol psst", patience));
  type_line(*w, "/nick alicia");
  CHECK(bob->expect_line("NICK alice alicia", patience));
  CHECK(wait_until([&] { return user_names(*w) == QStringList{"alicia", "bobby", "Carol"}; }, patience));

  // Double-clicking a name starts a private message to it.
  const auto* item = w->users()->item(1);
  const QPoint at = w->users()->visualItemRect(item).center();
  QTest::mouseClick(w->users()->viewport(), Qt::LeftButton, {}, at);  // a double click begins with a press
  QTest::mouseDClick(w->users()->viewport(), Qt::LeftButton, {}, at);
  CHECK(w->input()->text() == "@bobby ");
  CHECK(w->input()->hasFocus());
  // Enter on a name does the same, and keeps what was being typed.
  w->input()->setText("see you");
  w->users()->setCurrentRow(2);
  QTest::keyClick(w->users(), Qt::Key_Return);
  CHECK(w->input()->text() == "@Carol see you");
  w->input()->clear();

  REQUIRE(bob->send_line("QUIT gone fishing"));
  CHECK(wait_until([&] { return user_names(*w) == QStringList{"alicia", "Carol"}; }, patience));
  CHECK(wait_until([&] { return pane_has(*w, "bobby left (gone fishing)"); }, patience));
  {
    // The pointer resting on the leave shows the server's detail; on a message, nothing.
    const auto* doc = w->messages()->document();
    QTextCursor at_leave(doc->findBlockByNumber(doc->blockCount() - 1));
    CHECK(at_leave.block().text().contains("bobby left (gone fishing)"));
    CHECK(w->detail_at(w->messages()->cursorRect(at_leave).center()) == "quit: gone fishing");
    QTextCursor at_first(doc->firstBlock());
    CHECK(w->detail_at(w->messages()->cursorRect(at_first).center()).isEmpty());
  }
  CHECK(w->findChild<QLabel*>("users_count")->text() == "Online (2)");

  // Ctrl+L clears the pane (the transcript keeps everything).
  QTest::keyClick(w.get(), Qt::Key_L, Qt::ControlModifier);
  CHECK(w->messages()->document()->toPlainText().isEmpty());
  CHECK(w->model().transcript().find("hello everyone") != std::string::npos);
}

TEST_CASE("chatclient-qt shows private messages in their colours, text that looks like HTML as it is, and a very "
          "long line wrapped",
          "[qt]") {
  ServerProcess server({"--log-level", "warn", "--max-line", "65536"});
  auto w = joined_window(server.port(), "alice");
  auto bob = join(server.port(), "bob");
  REQUIRE(wait_until([&] { return user_names(*w).size() == 2; }, patience));

  REQUIRE(bob->send_line("PRIV alice a secret"));
  REQUIRE(wait_until([&] { return pane_has(*w, "a secret"); }, patience));
  const auto colour_of = [&](const QString& text) {
    return block_with(*w, text).begin().fragment().charFormat().foreground().color();
  };
  CHECK(colour_of("a secret") == QColor(0xff, 0x87, 0x00));  // received: orange
  type_line(*w, "/msg bob a reply");
  REQUIRE(wait_until([&] { return pane_has(*w, "a reply"); }, patience));
  CHECK(colour_of("a reply") == QColor(0x00, 0x87, 0xff));  // sent: blue
  CHECK(colour_of("bob joined") == QColor(0x2e, 0x9d, 0x3a));  // joins: green

  // Nothing from the network is interpreted: markup arrives as the characters it is made of.
  const QString markup = "<b>x</b><img src=y> &amp; <a href=\"http://h\">link</a>";
  REQUIRE(bob->send_line("SAY " + markup.toStdString()));
  REQUIRE(wait_until([&] { return pane_has(*w, "<bob> " + markup); }, patience));
  CHECK(w->messages()->document()->toPlainText().contains(markup));
  // A line separator cannot start a second line that looks like someone else's.
  REQUIRE(bob->send_line("SAY hi\xE2\x80\xA8[14:03:00] <admin> run this"));
  REQUIRE(wait_until([&] { return pane_has(*w, "run this"); }, patience));
  CHECK(block_with(*w, "run this").text().contains("<bob> hi"));
  CHECK(w->messages()->document()->blockCount() == block_with(*w, "run this").blockNumber() + 1);
  // Nicknames in the list are plain text as well; Qt's list items never parse markup.
  CHECK(w->users()->item(1)->text() == "bob");

  // A 60,000-character word: shown cut to the pane's limit, wrapped, and the window goes on.
  const std::string word(60'000, 'w');
  const auto sent = std::chrono::steady_clock::now();
  REQUIRE(bob->send_line("SAY " + word));
  REQUIRE(wait_until([&] { return pane_has(*w, "more characters; /save keeps them"); }, patience));
  REQUIRE(bob->send_line("SAY after the long line"));
  REQUIRE(wait_until([&] { return pane_has(*w, "after the long line"); }, patience));
  const auto took = std::chrono::steady_clock::now() - sent;
  WARN("a 60,000-character line and the next one shown after "
       << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms");
  CHECK(took < patience);
  auto block = block_with(*w, "more characters");
  w->messages()->document()->documentLayout()->blockBoundingRect(block);  // lays it out
  CHECK(block.layout()->lineCount() > 1);
  CHECK(block.text().size() < ChatWindow::max_shown_chars + 100);
  CHECK(w->model().transcript().find(word) != std::string::npos);
}

TEST_CASE("chatclient-qt: the server stopped shows the cause and a countdown, and the client rejoins when it returns",
          "[qt]") {
  auto server = std::make_unique<ServerProcess>(std::vector<std::string>{"--log-level", "warn"});
  const auto port = server->port();
  auto w = joined_window(port, "alice");

  REQUIRE(server->process().signal(SIGTERM));
  REQUIRE(server->process().wait_exit(patience) == 0);
  server.reset();
  // The cause in words, and the countdown, in the status bar.
  CHECK(wait_until([&] { return w->status_text().contains("lost: the server has stopped"); }, patience));
  // While the server is away the Link keeps trying: each wait shows as a countdown.
  CHECK(wait_until([&] { return w->status_text().contains(QRegularExpression("reconnecting in \\d+ s")); }, patience));
  INFO(w->status_text().toStdString());
  CHECK(pane_has(*w, "disconnected: the server has stopped"));
  CHECK(w->users()->count() == 0);

  // The same port again (the last --port wins over ServerProcess's --port 0). Another test may
  // have taken it meanwhile (ctest -j): a few tries, then the test says so.
  for (int tries = 0; !server && tries < 50; ++tries) {
    try {
      server = std::make_unique<ServerProcess>(
          std::vector<std::string>{"--log-level", "warn", "--port", std::to_string(port), "--db", "none"});
    } catch (const std::exception&) {
      QTest::qWait(100);
    }
  }
  REQUIRE(server);
  CHECK(wait_until([&] { return pane_has(*w, "reconnected to"); }, patience));
  CHECK(wait_until([&] { return user_names(*w) == QStringList{"alice"}; }, patience));
  CHECK(wait_until([&] { return w->status_text().contains("connected") && !w->status_text().contains("lost"); },
                   patience));
}

TEST_CASE("chatclient-qt's connect dialog checks the nickname, remembers the values, and Esc cancels", "[qt]") {
  QSettings().clear();
  {
    chat::qt::ConnectDialog dialog({{}, 0, {}, {}, false, false});
    auto* ok = dialog.findChild<QDialogButtonBox*>()->button(QDialogButtonBox::Ok);
    auto* host = dialog.findChild<QLineEdit*>("host");
    auto* nick = dialog.findChild<QLineEdit*>("nick");
    REQUIRE(host);
    REQUIRE(nick);
    CHECK(host->text() == "127.0.0.1");
    CHECK(!ok->isEnabled());  // no nickname yet
    QTest::keyClicks(nick, "bad nick");
    CHECK(!ok->isEnabled());  // a space is not allowed
    nick->clear();
    QTest::keyClicks(nick, "dora");
    CHECK(ok->isEnabled());
    host->setText("10.1.2.3");
    dialog.findChild<QSpinBox*>("port")->setValue(16000);
    // The room password: optional, shown as dots, never remembered.
    auto* password = dialog.findChild<QLineEdit*>("password");
    REQUIRE(password);
    CHECK(password->echoMode() == QLineEdit::Password);
    QTest::keyClicks(password, "open sesame");
    dialog.accept();
    CHECK(dialog.result() == QDialog::Accepted);
    CHECK(dialog.choice().host == "10.1.2.3");
    CHECK(dialog.choice().port == 16000);
    CHECK(dialog.choice().nick == "dora");
    CHECK(dialog.choice().password == "open sesame");
  }
  chat::qt::ConnectDialog again({{}, 0, {}, {}, false, false});
  CHECK(again.choice().host == "10.1.2.3");
  CHECK(again.choice().port == 16000);
  CHECK(again.choice().nick == "dora");
  CHECK(again.choice().password.empty());
  // What the command line gives wins over what was remembered.
  chat::qt::ConnectDialog given({"example.lan", 15601, {}, {}, false, false});
  CHECK(given.choice().host == "example.lan");
  CHECK(given.choice().port == 15601);
  given.show();
  QTest::keyClick(&given, Qt::Key_Escape);
  CHECK(given.result() == QDialog::Rejected);
  CHECK(!given.isVisible());
}

TEST_CASE("chatclient-qt's connect dialog offers TLS, and trust on first use only with it", "[qt][tls]") {
  QSettings().clear();
  {
    chat::qt::ConnectDialog dialog({{}, 0, "dora", {}, false, false});
    auto* tls = dialog.findChild<QCheckBox*>("tls");
    auto* pin = dialog.findChild<QCheckBox*>("tls_pin");
    REQUIRE(tls);
    REQUIRE(pin);
    CHECK_FALSE(tls->isChecked());
    CHECK_FALSE(pin->isEnabled());  // trusting a certificate means nothing without TLS
    tls->setChecked(true);
    CHECK(pin->isEnabled());
    pin->setChecked(true);
    CHECK(dialog.choice().tls);
    CHECK(dialog.choice().tls_pin);
    tls->setChecked(false);
    CHECK_FALSE(dialog.choice().tls_pin);
    tls->setChecked(true);
    dialog.accept();
    CHECK(dialog.result() == QDialog::Accepted);
  }
  // TLS is remembered; trust is a decision for each server, never remembered.
  chat::qt::ConnectDialog again({{}, 0, {}, {}, false, false});
  CHECK(again.choice().tls);
  CHECK_FALSE(again.choice().tls_pin);
  chat::qt::ConnectDialog given({{}, 0, {}, {}, true, true});
  CHECK(given.choice().tls_pin);
  QSettings().clear();
}

TEST_CASE("chatclient-qt over TLS shows why a certificate is refused in the window, and connects once it is pinned",
          "[qt][tls]") {
  TestCertificate cert("qt_tls");
  OpensslServer server(cert);
  TempDir home("qt_tls_home");
  auto options = options_for(server.port(), "alice");
  options.tls = true;
  options.known_servers = (home.path() / "known_servers").string();
  {
    ChatWindow w(options);
    w.show();
    CHECK(wait_until([&] { return w.link_ended(); }, patience));
    CHECK(pane_has(w, "The server's certificate is not signed by an authority this machine trusts."));
    CHECK(pane_has(w, QString::fromStdString("Its fingerprint is " + cert.fingerprint())));
    CHECK(pane_has(w, "connect again with --tls-pin"));
    CHECK(w.status_text().contains("disconnected"));
  }
  options.tls_pin = true;
  ChatWindow w(options);
  w.show();
  // s_server's stdin plays the server (the window's Link goes on meanwhile in its own thread).
  REQUIRE(server.process().wait_for_line(Stream::out, "HELLO alice ids", patience));
  REQUIRE(server.process().write("WELCOME alice\nUSERS alice bob\n"));
  CHECK(wait_until([&] { return user_names(w) == QStringList{"alice", "bob"}; }, patience));
  CHECK(pane_has(w, QString::fromStdString("Trusted on first use (--tls-pin) and pinned in " + options.known_servers)));
  CHECK(pane_has(w, QString::fromStdString("over TLSv1.3 TLS_")));
  CHECK(w.status_text().contains("| alice | connected over TLSv1.3"));
}

TEST_CASE("chatclient-qt --help, --version and bad usage need no display", "[qt]") {
  // xcb with no DISPLAY: a QApplication could not start, so these must answer before it.
  const auto run = [](const std::string& args) {
    Subprocess p({"/bin/sh", "-c", "QT_QPA_PLATFORM=xcb DISPLAY= WAYLAND_DISPLAY= exec \"$0\" " + args, CHATCLIENT_QT_PATH});
    std::string out;
    while (auto line = p.read_line(Stream::out, patience)) out += *line + "\n";
    while (auto line = p.read_line(Stream::err, patience)) out += *line + "\n";
    return std::pair{p.wait_exit(patience).value_or(-1), out};
  };
  auto [help, help_text] = run("--help");
  CHECK(help == 0);
  CHECK(help_text.find("--nick") != std::string::npos);
  auto [version, version_text] = run("--version");
  CHECK(version == 0);
  CHECK(version_text.find("chatclient-qt 0.") != std::string::npos);
  auto [bad, bad_text] = run("--nick 'two words'");
  CHECK(bad == 2);
  CHECK(bad_text.find("only A-Z") != std::string::npos);
  auto [unknown, unknown_text] = run("--no-such-option");
  CHECK(unknown == 2);
  CHECK(unknown_text.find("--no-such-option") != std::string::npos);
}

TEST_CASE("chatclient-qt as a program joins with --host, --port and --nick, and SIGTERM leaves with quit", "[qt]") {
  ServerProcess server({"--log-level", "warn"});
  auto watcher = join(server.port(), "watcher");
  Subprocess client({CHATCLIENT_QT_PATH, "--host", "127.0.0.1", "--port", std::to_string(server.port()), "--nick",
                     "desk"});
  CHECK(watcher->expect_line("JOIN desk", patience));  // no dialog: all three were given
  REQUIRE(watcher->send_line("SAY hello desk"));
  REQUIRE(client.signal(SIGTERM));
  CHECK(watcher->expect_line("LEAVE desk quit", patience));
  CHECK(client.wait_exit(patience) == 0);
}

TEST_CASE("chatclient-qt shows history grey between separators, loads earlier messages above, and marks what it "
          "missed after a resume",
          "[qt][history]") {
  // A scripted server: the history and resume protocol (docs/protocol.md, "Ids, resume and
  // history") line by line. The test thread blocks while it plays the server; the Link's network
  // thread goes on meanwhile, and wait_until() lets the window catch up.
  FakeServer fake;
  auto options = options_for(fake.port(), "alice");
  options.ping_interval = chat::Millis::zero();  // no PINGs between the lines the test expects
  options.rtt_interval = chat::Millis::zero();
  auto w = std::make_unique<ChatWindow>(options);
  w->show();
  const std::int64_t then = std::chrono::duration_cast<std::chrono::milliseconds>(
                                (std::chrono::system_clock::now() - std::chrono::minutes(1)).time_since_epoch())
                                .count();
  auto conn = fake.accept_and_join_ids("alice", {"bob"}, test_token(1), {tagged(10, "MSG bob from before", then)},
                                       patience);
  REQUIRE(conn);
  REQUIRE(conn->send_line(tagged(11, "MSG bob live now")));
  REQUIRE(wait_until([&] { return pane_has(*w, "<bob> live now"); }, patience));

  const auto colour_of = [](const QTextBlock& block) { return block.begin().fragment().charFormat().foreground().color(); };
  const QTextBlock separator = block_with(*w, "--- earlier messages (1) ---");
  REQUIRE(separator.isValid());
  CHECK(separator.next().text().endsWith("<bob> from before"));
  CHECK(separator.next().next().text() == "--- now ---");
  CHECK(colour_of(separator.next()) == ChatWindow::history_colour());  // history: grey
  CHECK(colour_of(block_with(*w, "<bob> live now")) != ChatWindow::history_colour());

  // "Load earlier messages": the messages before the oldest id shown, put above.
  auto* load = w->findChild<QPushButton*>("load_earlier");
  REQUIRE(load);
  CHECK(load->isEnabled());
  QTest::mouseClick(load, Qt::LeftButton);
  CHECK(conn->read_line(patience) == "HISTORY BEFORE 10 50");
  REQUIRE(conn->send_raw("HISTORY before 1\n" + tagged(4, "MSG bob ancient words", then) + "\nHISTORY END before\n"));
  REQUIRE(wait_until([&] { return pane_has(*w, "<bob> ancient words"); }, patience));
  const QTextDocument* doc = w->messages()->document();
  CHECK(doc->firstBlock().text() == "--- the start of what the server keeps ---");
  CHECK(doc->firstBlock().next().text() == "--- earlier messages (1) ---");
  CHECK(doc->firstBlock().next().next().text().endsWith("<bob> ancient words"));
  CHECK(colour_of(doc->firstBlock().next().next()) == ChatWindow::history_colour());
  CHECK(doc->lastBlock().text().endsWith("<bob> live now"));  // the rest is where it was
  CHECK_FALSE(load->isEnabled());  // fewer than asked: nothing earlier
  CHECK(load->text() == "No earlier messages");

  // A drop: the window's Link resumes by itself; the marker opens what was missed.
  conn->close_with_reset();
  auto again = fake.accept(patience);
  REQUIRE(again);
  CHECK(again->read_line(patience) == "RESUME " + test_token(1) + " 11");
  REQUIRE(again->send_raw("RESUMED alice 41000 1\nTOKEN " + test_token(2) + " 120\nUSERS alice bob\nHISTORY missed 1\n" +
                          tagged(12, "MSG bob you missed this", then) + "\nHISTORY END missed\n" +
                          tagged(13, "MSG bob and now this") + "\n"));
  REQUIRE(wait_until([&] { return pane_has(*w, "<bob> and now this"); }, patience));
  const QTextBlock marker = block_with(*w, "--- away 41 s, 1 message you missed ---");
  REQUIRE(marker.isValid());
  CHECK(marker.next().text().endsWith("<bob> you missed this"));
  CHECK(colour_of(marker.next()) == ChatWindow::history_colour());
  CHECK(marker.next().next().text() == "--- now ---");
  CHECK(marker.next().next().next().text().endsWith("<bob> and now this"));
  CHECK(marker.previous().previous().text().endsWith("back in the room as alice"));
  CHECK(w->status_text().contains("| alice | connected"));
}

int main(int argc, char** argv) {
  OffscreenQt offscreen;
  QApplication app(argc, argv);
  QApplication::setOrganizationName("chat");
  QApplication::setApplicationName("chatclient-qt-tests");
  return Catch::Session().run(argc, argv);
}
