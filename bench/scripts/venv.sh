# Sourced by the set-up scripts of the Python contenders: `setup_venv NAME
# REQUIREMENTS MODULES` makes a venv at .deps/NAME with the pinned packages of
# REQUIREMENTS and checks that MODULES (comma-separated) import. Idempotent: a
# stamp file holding the hash of Python's version and the requirements skips
# the install when nothing changed. PYTHON picks the interpreter (python3).

setup_venv() {
    local name="$1" req="$2" modules="$3"
    local root venv stamp python want
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
    venv="$root/.deps/$name"
    stamp="$venv/.requirements.sha256"
    python="${PYTHON:-python3}"

    want="$( { "$python" --version 2>&1; cat "$req"; } | sha256sum | cut -d' ' -f1)"
    if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        echo "$name: up to date ($venv)"
        return 0
    fi

    echo "$name: installing into $venv"
    rm -f "$stamp"
    [[ -x "$venv/bin/python" ]] || "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
    # Fail here, not in the benchmark, if a package is broken.
    "$venv/bin/python" -c "import $modules"
    echo "$want" > "$stamp"
    echo "$name: ready ($venv)"
}
