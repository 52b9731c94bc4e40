// ConnectDialog: server, port and nickname, asked for when the command line does not give all
// three, and the room's password for a server that has one (optional, shown as dots); "TLS"
// (LinkOptions::tls) and "Trust on first use" (LinkOptions::tls_pin, which needs TLS). The
// last values are remembered with QSettings, the password and the trust never (trusting a
// certificate is a decision for each new server). Enter connects, Esc cancels.
//
// GUI thread only.
#pragma once

#include <QDialog>

#include <cstdint>
#include <optional>
#include <string>

class QCheckBox;
class QDialogButtonBox;
class QLabel;
class QLineEdit;
class QSpinBox;

namespace chat::qt {

struct ConnectChoice {
  std::string host;
  std::uint16_t port = 15600;
  std::string nick;
  std::string password;  // the room's (chatserver --password-file); "": none
  bool tls = false;
  bool tls_pin = false;  // trust an unverified certificate on first use, and pin it
};

class ConnectDialog : public QDialog {
  Q_OBJECT

 public:
  // `given` holds what the command line gave; the rest comes from the remembered values.
  explicit ConnectDialog(const ConnectChoice& given, QWidget* parent = nullptr);
  ConnectChoice choice() const;

  void accept() override;  // checks the nickname, remembers the values

 private:
  void check();

  QLineEdit* host_ = nullptr;
  QSpinBox* port_ = nullptr;
  QLineEdit* nick_ = nullptr;
  QLineEdit* password_ = nullptr;
  QCheckBox* tls_ = nullptr;
  QCheckBox* tls_pin_ = nullptr;
  QLabel* problem_ = nullptr;
  QDialogButtonBox* buttons_ = nullptr;
};

}  // namespace chat::qt
