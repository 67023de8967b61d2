# Debian 12's xsimd 8.1.0 exports INTERFACE_LINK_LIBRARIES "xtl", but bookworm has no libxtl-dev,
# so every target linking xsimd fails with "cannot find -lxtl". xsimd itself never needs xtl
# unless XSIMD_ENABLE_XTL_COMPLEX is set, so drop the dangling item when no xtl target exists.
# Installed next to ssmkitConfig.cmake: consumers of an installed ssmkit need it too.
if(TARGET xsimd AND NOT TARGET xtl)
  get_target_property(_ssmkit_xsimd_libs xsimd INTERFACE_LINK_LIBRARIES)
  if(_ssmkit_xsimd_libs)
    list(REMOVE_ITEM _ssmkit_xsimd_libs xtl)
    set_property(TARGET xsimd PROPERTY INTERFACE_LINK_LIBRARIES "${_ssmkit_xsimd_libs}")
  endif()
  unset(_ssmkit_xsimd_libs)
endif()
