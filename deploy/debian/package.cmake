# deploy/debian/package.cmake: the install rules and the CPack settings that
# make stampd_VERSION_ARCH.deb (`cmake --build build --target package`, or
# `cpack` in the build directory). Included at the end of the top
# CMakeLists.txt; include(CPack) adds the package and package_source targets.
#
# The package: /usr/sbin/stampd, /etc/stampd/stampd.toml (a conffile),
# /lib/systemd/system/stampd.service, the docs and examples; postinst makes
# the stampd system user and /etc/stampd/keys. Depends: comes from the
# libraries the binary links (dpkg-shlibdeps), plus adduser for postinst.

# CPack's DEB prefix is /usr: sbin is /usr/sbin, where the unit looks.
# (`cmake --install build --prefix /usr` gives the same layout by hand, but
# it overwrites /etc/stampd/stampd.toml, which the package never does.)
install(TARGETS stampd RUNTIME DESTINATION sbin)
# /etc and the system unit directory do not move with the prefix.
install(FILES ${CMAKE_CURRENT_LIST_DIR}/stampd.toml DESTINATION /etc/stampd)
install(FILES ${PROJECT_SOURCE_DIR}/deploy/systemd/stampd.service DESTINATION /lib/systemd/system)
install(FILES ${PROJECT_SOURCE_DIR}/README.md DESTINATION share/doc/stampd)
install(FILES ${PROJECT_SOURCE_DIR}/etc/stampd.toml DESTINATION share/doc/stampd/examples)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/deploy/postfix DESTINATION share/doc/stampd/examples)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/deploy/haproxy DESTINATION share/doc/stampd/examples)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME stampd)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "SMTP relay proxy that DKIM-signs outgoing mail")
# The summary above is the first line of Description:, this the rest.
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION "stampd sits between the mail an organisation sends (a Postfix content_filter
or relayhost, an application) and the MTA that delivers it. It applies an SPF
policy to the sender's IP, DKIM-signs each message while it streams in
(rsa-sha256, ed25519-sha256) and relays it, answering the client with the
upstream's verdict; it has no queue, so nothing is lost in it. One daemon
and one TOML file replace OpenDKIM, its milter and its tables.")
if(NOT CPACK_DEBIAN_PACKAGE_MAINTAINER)  # -DCPACK_DEBIAN_PACKAGE_MAINTAINER="You <you@...>"
  set(CPACK_DEBIAN_PACKAGE_MAINTAINER "stampd maintainers <stampd@localhost>")
endif()
set(CPACK_DEBIAN_PACKAGE_SECTION mail)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # stampd_0.1.0_amd64.deb
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS adduser)  # postinst; merged with the shlibdeps
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS ca-certificates)  # the default CA store for upstream TLS
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  ${CMAKE_CURRENT_LIST_DIR}/conffiles ${CMAKE_CURRENT_LIST_DIR}/postinst
  ${CMAKE_CURRENT_LIST_DIR}/prerm ${CMAKE_CURRENT_LIST_DIR}/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)  # scripts 0755, conffiles 0644
include(CPack)
