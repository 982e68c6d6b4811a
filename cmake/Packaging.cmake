# Debian packages with CPack (docs/INSTALL.md): from a build directory,
#   cpack -G DEB
# writes content-mover-server_VERSION_ARCH.deb and
# content-mover-ccm_VERSION_ARCH.deb, one per install component:
#   content-mover-server  cm-apply, cm-push (for `cm-push relay`), cm-leader,
#                         cm-mcast; cm-push-relay.service, cm-leader.service
#                         (installed disabled); relay/leader/apply/mcast.toml
#                         as conffiles; the system user content-mover
#   content-mover-ccm     cm-delta, cm-pack; pack.toml, sites.toml; depends on
#                         content-mover-server of the same version for cm-push
#                         (the push) and cm-apply (the shadow copy): one copy
#                         of each binary, so a host may hold both packages
# Library dependencies come from dpkg-shlibdeps (libzstd1, libsodium23,
# libisal2, libsqlite3-0, libstdc++6, libc6).
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME content-mover)
set(CPACK_PACKAGE_VENDOR "Content Mover")
set(CPACK_PACKAGE_CONTACT "Content Mover maintainers <content-mover@localhost>")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "moves content to many servers: deltas, a tree of site leaders, multicast, atomic switch")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_COMPONENTS_ALL server ccm)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # NAME_VERSION-RELEASE_ARCH.deb
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_STRIP_FILES ON)  # as Debian ships binaries (no -dbgsym package here)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://example.invalid/content-mover")
set(CPACK_DEBIAN_ENABLE_COMPONENT_DEPENDS OFF)

set(_cm_deb "${PROJECT_SOURCE_DIR}/packaging/debian")
set(CPACK_DEBIAN_SERVER_PACKAGE_NAME content-mover-server)
set(CPACK_DEBIAN_SERVER_PACKAGE_DEPENDS "adduser")
string(JOIN "\n" CPACK_COMPONENT_SERVER_DESCRIPTION
    "Content Mover for every server: relay, apply, leader election, multicast"
    "cm-push relay receives pushes from the CCM or another site leader, forwards"
    "them, multicasts them to its site (cm-mcast) and applies them (cm-apply, an"
    "atomic switch of the live tree); cm-leader elects each site's leader."
    "Hardened systemd units cm-push-relay.service and cm-leader.service are"
    "installed disabled; see /usr/share/doc/content-mover/INSTALL.md.")
set(CPACK_DEBIAN_SERVER_PACKAGE_CONTROL_EXTRA
    "${_cm_deb}/server/conffiles;${_cm_deb}/server/postinst;${_cm_deb}/server/prerm;${_cm_deb}/server/postrm")
set(CPACK_DEBIAN_SERVER_PACKAGE_CONTROL_STRICT_PERMISSION ON)

set(CPACK_DEBIAN_CCM_PACKAGE_NAME content-mover-ccm)
set(CPACK_DEBIAN_CCM_PACKAGE_DEPENDS "content-mover-server (= ${PROJECT_VERSION}-1)")
string(JOIN "\n" CPACK_COMPONENT_CCM_DESCRIPTION
    "Content Mover for the CCM: deltas and assignments"
    "cm-delta finds what changed between the shadow copy and the staging tree,"
    "cm-pack packs it into signed assignments; cm-push (from content-mover-server)"
    "pushes them through the tree of site leaders and keeps the job history.")
set(CPACK_DEBIAN_CCM_PACKAGE_CONTROL_EXTRA "${_cm_deb}/ccm/conffiles;${_cm_deb}/ccm/postrm")
set(CPACK_DEBIAN_CCM_PACKAGE_CONTROL_STRICT_PERMISSION ON)

# cpack reruns the install with prefix /usr; units name PREFIX/bin in ExecStart
# at that time (cmake/InstallSystemFiles.cmake), whatever prefix the build was
# configured with.
include(CPack)
