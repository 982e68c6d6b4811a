# Install-time part of the install rules (included from cmake_install.cmake
# with CM_SOURCE_DIR, CM_BUILD_DIR, CM_CONFIGS, CM_UNITS, CM_SYSTEMD_UNITDIR, CM_BINDIR_REL
# set): the files whose place or text depends on the prefix the install runs
# with, which `cmake --install --prefix P` and cpack (prefix /usr, DESTDIR set)
# choose after configuration.
#   units    -> /lib/systemd/system (prefix /usr) or PREFIX/lib/systemd/system,
#               with @CM_BINDIR@ replaced by PREFIX/bin
#   configs  -> /etc/content-mover (prefix /usr) or
#               PREFIX/share/doc/content-mover/etc (the tools read
#               /etc/content-mover only: copy them there)
#   dirs     -> CM_DIRS ("PATH:MODE" pairs, e.g. /var/lib/content-mover/ccm:0700),
#               made for prefix /usr only (a package's state directories)
# file(INSTALL) adds $ENV{DESTDIR} itself; the checks and directories here
# add it by hand.
# An install straight onto the system (no DESTDIR) keeps a config that already
# exists, as dpkg keeps a changed conffile: it is never overwritten.
set(_prefix "${CMAKE_INSTALL_PREFIX}")
string(REGEX REPLACE "/+$" "" _prefix "${_prefix}")
if(_prefix STREQUAL "/usr")
  set(_etc "/etc/content-mover")
  set(_unitdir "${CM_SYSTEMD_UNITDIR}")
else()
  set(_etc "${_prefix}/share/doc/content-mover/etc")
  set(_unitdir "${_prefix}/lib/systemd/system")
endif()
set(CM_BINDIR "${_prefix}/${CM_BINDIR_REL}")

foreach(_unit IN LISTS CM_UNITS)
  set(_tmp "${CM_BUILD_DIR}/cm-units/${_unit}")
  configure_file("${CM_SOURCE_DIR}/packaging/systemd/${_unit}.in" "${_tmp}" @ONLY)
  file(INSTALL DESTINATION "${_unitdir}" TYPE FILE
       PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ FILES "${_tmp}")
endforeach()

foreach(_conf IN LISTS CM_CONFIGS)
  set(_dest "$ENV{DESTDIR}${_etc}/${_conf}")
  if("$ENV{DESTDIR}" STREQUAL "" AND EXISTS "${_dest}")
    message(STATUS "Keeping: ${_dest} (exists; the sample is ${CM_SOURCE_DIR}/packaging/etc/${_conf})")
    continue()
  endif()
  file(INSTALL DESTINATION "${_etc}" TYPE FILE
       PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ FILES "${CM_SOURCE_DIR}/packaging/etc/${_conf}")
endforeach()

if(_prefix STREQUAL "/usr")
  foreach(_pair IN LISTS CM_DIRS)
    string(REGEX MATCH "^([^:]+):([0-7]+)$" _m "${_pair}")
    set(_dir "$ENV{DESTDIR}${CMAKE_MATCH_1}")
    file(MAKE_DIRECTORY "${_dir}")
    execute_process(COMMAND chmod "${CMAKE_MATCH_2}" "${_dir}" COMMAND_ERROR_IS_FATAL ANY)
  endforeach()
endif()
