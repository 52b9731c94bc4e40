# Runs at install time (cmake --install, and cpack staging the .deb): installs the systemd unit,
# the config file and the logrotate snippet. Where they go depends on the prefix, known only
# now: with /usr (the package) /etc and /lib/systemd/system, as Debian puts them; with any
# other prefix P, P/etc and P/lib/systemd/system, so `cmake --install --prefix P` writes only
# under P. The unit names the programs and the config file where they were installed.
#
# Set before this runs (packaging/CMakeLists.txt): chat_source_dir, chat_binary_dir,
# chat_bindir, chat_docdir (the last two relative to the prefix).
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(chat_etc "/etc")
  set(chat_unitdir "/lib/systemd/system")
else()
  set(chat_etc "${CMAKE_INSTALL_PREFIX}/etc")
  set(chat_unitdir "${CMAKE_INSTALL_PREFIX}/lib/systemd/system")
endif()
set(CHAT_CONF "${chat_etc}/chat/chatserver.conf")
set(CHAT_CONF_DIR "${chat_etc}/chat")
set(CHAT_BIN "${CMAKE_INSTALL_PREFIX}/${chat_bindir}")
set(CHAT_DOC "${CMAKE_INSTALL_PREFIX}/${chat_docdir}")
# Configured into a folder of this install's own (two installs may run at once, e.g. cpack and
# `cmake --install --prefix P` in the tests), then installed from there.
string(MD5 chat_install_id "$ENV{DESTDIR}|${CMAKE_INSTALL_PREFIX}")
set(chat_configured "${chat_binary_dir}/installed-${chat_install_id}")
configure_file("${chat_source_dir}/chatserver.service.in" "${chat_configured}/chatserver.service" @ONLY)
configure_file("${chat_source_dir}/chatserver@.service.in" "${chat_configured}/chatserver@.service" @ONLY)
configure_file("${chat_source_dir}/chatserver.logrotate.in" "${chat_configured}/chatserver" @ONLY)
file(INSTALL "${chat_configured}/chatserver.service" "${chat_configured}/chatserver@.service"
     DESTINATION "${chat_unitdir}")
# Several chatservers behind HAProxy (docs/scale-out.md): an example, not switched on.
file(INSTALL "${chat_source_dir}/haproxy-chat.cfg" DESTINATION "${CMAKE_INSTALL_PREFIX}/${chat_docdir}/examples")
# An installed config file is the admin's: a second `cmake --install` leaves it alone (and
# puts the shipped one next to it), as dpkg does with a conffile. Staging a package (DESTDIR)
# always writes it.
set(chat_conf_installed "$ENV{DESTDIR}${chat_etc}/chat/chatserver.conf")
if(NOT "$ENV{DESTDIR}" STREQUAL "" OR NOT EXISTS "${chat_conf_installed}")
  file(INSTALL "${chat_binary_dir}/chatserver.conf" DESTINATION "${chat_etc}/chat")
else()
  file(INSTALL "${chat_binary_dir}/chatserver.conf" DESTINATION "${chat_etc}/chat" RENAME chatserver.conf.dist)
  message(STATUS "Kept: ${chat_conf_installed} (the shipped one is chatserver.conf.dist beside it)")
endif()
file(INSTALL "${chat_configured}/chatserver" DESTINATION "${chat_etc}/logrotate.d")
if(NOT CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  message(STATUS "Note: logrotate reads /etc/logrotate.d, not ${chat_etc}/logrotate.d: link or copy the "
                 "snippet there if this chatserver runs as the service")
endif()
file(REMOVE_RECURSE "${chat_configured}")
