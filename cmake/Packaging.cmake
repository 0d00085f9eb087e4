# Install layout and Debian packages.
#
# Everything installed belongs to one of two components, "client" and
# "gateway"; `cpack -G DEB` in the build directory turns each into a
# package of its own (flowpost-client, flowpost-gateway), and a plain
# `cmake --install` installs both.  The binaries get their component from
# CMAKE_INSTALL_DEFAULT_COMPONENT_NAME, set around add_subdirectory() in
# the top-level CMakeLists.txt; the rest is installed here:
#
#   bin/flowpost-<name>                        (client/, gateway/)
#   share/man/man8/flowpost-<name>.8
#   share/man/man5/flowpost-<name>.conf.5      (docs/man/flowpost.conf.5)
#   share/doc/flowpost-<name>/*.md, LICENSE
#   share/doc/flowpost-<name>/examples/flowpost-<name>.conf
#   lib/systemd/system/flowpost-<name>.service
#
# flowpost.conf(5) documents both daemons; each package ships it under its
# own name, so that both packages can be installed on one host.

set(FLOWPOST_COMPONENTS client gateway)

file(GLOB FLOWPOST_DOC_PAGES CONFIGURE_DEPENDS
  ${PROJECT_SOURCE_DIR}/docs/*.md)

foreach(name IN LISTS FLOWPOST_COMPONENTS)
  set(docdir ${CMAKE_INSTALL_DATAROOTDIR}/doc/flowpost-${name})

  install(FILES ${PROJECT_SOURCE_DIR}/docs/man/flowpost-${name}.8
    DESTINATION ${CMAKE_INSTALL_MANDIR}/man8 COMPONENT ${name})
  install(FILES ${PROJECT_SOURCE_DIR}/docs/man/flowpost.conf.5
    DESTINATION ${CMAKE_INSTALL_MANDIR}/man5 RENAME flowpost-${name}.conf.5
    COMPONENT ${name})

  install(FILES ${PROJECT_SOURCE_DIR}/README.md ${PROJECT_SOURCE_DIR}/LICENSE
    ${FLOWPOST_DOC_PAGES} DESTINATION ${docdir} COMPONENT ${name})
  install(FILES ${PROJECT_SOURCE_DIR}/docs/flowpost-${name}.conf
    DESTINATION ${docdir}/examples COMPONENT ${name})
  # A reverse proxy in front of the gateway (DEPLOYMENT.md).
  if(name STREQUAL "gateway" AND
      EXISTS ${PROJECT_SOURCE_DIR}/docs/nginx-flowpost.conf)
    install(FILES ${PROJECT_SOURCE_DIR}/docs/nginx-flowpost.conf
      DESTINATION ${docdir}/examples COMPONENT ${name})
  endif()

  # The units in docs/systemd/ name /usr/bin, where the packages put the
  # binaries; an installation under another prefix gets its own bindir
  # written in.  CPack installs with the prefix /usr and DESTDIR, so the
  # packaged units keep /usr/bin.
  set(unit flowpost-${name}.service)
  install(CODE "
    file(READ \"${PROJECT_SOURCE_DIR}/docs/systemd/${unit}\" _unit)
    string(REPLACE \"/usr/bin/\"
      \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}/\" _unit \"\${_unit}\")
    file(WRITE \"${PROJECT_BINARY_DIR}/systemd/${unit}\" \"\${_unit}\")
    file(INSTALL DESTINATION \"\${CMAKE_INSTALL_PREFIX}/lib/systemd/system\"
      TYPE FILE FILES \"${PROJECT_BINARY_DIR}/systemd/${unit}\")
    " COMPONENT ${name})
endforeach()

# --- CPack: two Debian packages ------------------------------------------

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME flowpost)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "flowpost")
set(CPACK_PACKAGE_CONTACT "flowpost maintainers <flowpost@example.org>")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)

set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL ${FLOWPOST_COMPONENTS})
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${CPACK_PACKAGE_CONTACT}")

set(CPACK_DEBIAN_CLIENT_PACKAGE_NAME flowpost-client)
set(CPACK_DEBIAN_GATEWAY_PACKAGE_NAME flowpost-gateway)

# The first line is the package summary, the rest the long description.
set(CPACK_DEBIAN_CLIENT_DESCRIPTION "NetFlow/IPFIX over HTTP(S): field kit daemon
flowpost-client receives NetFlow v5, v9 and IPFIX export datagrams on UDP,
batches, compresses and seals them, keeps every batch in a disk spool and
posts the batches in order through whatever proxy the network imposes,
retrying until a flowpost-gateway acknowledges them.")
set(CPACK_DEBIAN_GATEWAY_DESCRIPTION "NetFlow/IPFIX over HTTP(S): gateway daemon
flowpost-gateway is an HTTP server that authenticates the sealed batches
flowpost-client posts, drops repeats and re-emits every datagram byte for
byte, in order, as UDP to the configured NetFlow/IPFIX collectors.")

# Dependencies: from the binaries with dpkg-shlibdeps (dpkg-dev) when it is
# there, otherwise the libraries they link, named for Debian 12.
find_program(FLOWPOST_DPKG_SHLIBDEPS dpkg-shlibdeps)
if(FLOWPOST_DPKG_SHLIBDEPS)
  set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
else()
  set(CPACK_DEBIAN_CLIENT_PACKAGE_DEPENDS
    "libc6, libcurl4, libmicrohttpd12, zlib1g, libinih1, libsodium23, libpcap0.8")
  set(CPACK_DEBIAN_GATEWAY_PACKAGE_DEPENDS
    "libc6, libmicrohttpd12, zlib1g, libinih1, libsodium23")
endif()

# The gateway's unit runs as the system user flowpost-gateway.
set(CPACK_DEBIAN_GATEWAY_PACKAGE_CONTROL_EXTRA
  ${PROJECT_SOURCE_DIR}/cmake/deb/gateway/postinst)
set(CPACK_DEBIAN_GATEWAY_PACKAGE_CONTROL_STRICT_PERMISSION ON)

include(CPack)
