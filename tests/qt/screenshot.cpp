// Draws docs/pictures/chatclient-qt.png: chatclient-qt in a scripted conversation against a
// real chatserver on 127.0.0.1 port 0 (offscreen), grabbed with QWidget::grab(). Run by the
// docs-screenshot build target; the picture is never edited by hand.
//
//   chatclient_qt_screenshot OUTPUT.png
#include "client/qt/chat_window.hpp"
#include "tests/process/server_process.hpp"
#include "tests/qt/qt_support.hpp"
#include "tests/support/line_client.hpp"

#include <QApplication>
#include <QLineEdit>
#include <QListWidget>
#include <QPixmap>
#include <QPlainTextEdit>

#include <iostream>
#include <memory>

using namespace chat::test;

namespace {

std::unique_ptr<LineClient> join(std::uint16_t port, const std::string& nick) {
  auto c = std::make_unique<LineClient>(port);
  if (!c->send_line("HELLO " + nick) || !c->expect_line("WELCOME " + nick, patience)) {
    throw std::runtime_error(nick + " could not join");
  }
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: chatclient_qt_screenshot OUTPUT.png\n";
    return 2;
  }
  OffscreenQt offscreen;
  QApplication app(argc, argv);
  try {
    ServerProcess server({"--log-level", "warn"});
    auto bob = join(server.port(), "bob");
    chat::LinkOptions options;
    options.port = server.port();
    options.nick = "alice";
    chat::qt::ChatWindow window(options);
    window.resize(820, 400);
    window.show();
    const auto shows = [&](const char* text) {
      return wait_until([&] { return window.messages()->document()->toPlainText().contains(text); }, patience);
    };
    if (!shows("welcome, alice")) throw std::runtime_error("alice did not join");
    auto carol = join(server.port(), "carol");
    bob->send_line("SAY hi alice, we are on the LAN chat");
    shows("we are on the LAN chat");
    window.input()->setText("hello bob, hello carol");
    QMetaObject::invokeMethod(window.input(), "returnPressed");
    shows("<alice> hello bob");
    carol->send_line("ME brings the snacks");
    carol->send_line("PRIV alice is dave coming tonight?");
    shows("dave coming");
    window.input()->setText("/msg carol he said 20:00");
    QMetaObject::invokeMethod(window.input(), "returnPressed");
    shows("he said 20:00");
    auto dave = join(server.port(), "dave");
    dave->close_with_reset();  // his laptop lost the Wi-Fi: the server notices at once
    shows("dave's connection was reset");
    bob->send_line("SAY <b>not bold</b>: markup shows as it is");
    shows("markup shows");
    wait_until([&] { return window.users()->count() == 3; }, patience);
    window.input()->setText("/who");
    if (!window.grab().save(QString::fromLocal8Bit(argv[1]), "PNG")) throw std::runtime_error("cannot write the PNG");
    std::cout << "wrote " << argv[1] << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "chatclient_qt_screenshot: " << e.what() << "\n";
    return 1;
  }
}
