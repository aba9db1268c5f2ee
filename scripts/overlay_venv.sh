# Sourced by scripts/deploy_matrix.sh and scripts/int8_map.sh (not run on its own).
#
# overlay_venv DIR PYTHON: a fresh venv at DIR made from PYTHON's interpreter that sees
# PYTHON's installed packages through a .pth file (site.addsitedir), so torch,
# Ultralytics and effzoo (this checkout, editable) are the project's own; what is
# pip-installed into DIR stays there (pip does not uninstall anything outside it).
overlay_venv() {
    local dir="$1" py="$2" base vsite
    base="$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" || return 1
    rm -rf "$dir"
    "$py" -m venv "$dir" || return 1
    vsite="$("$dir/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    echo "import site; site.addsitedir('$base')" > "$vsite/_effzoo_base.pth"
}
