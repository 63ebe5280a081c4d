#!/usr/bin/env bash
# Build the local grading images of inginious-agent-docker, with no registry.
#
#   images/build.sh [--sample-only]
#
# - A Debian root filesystem is made with debootstrap (Debian's apt mirror only) and cached as a
#   tarball under ${INGINIOUS_AGENT_CACHE:-/var/cache/inginious-agent-docker}.
# - inginious-agent-docker/sample:latest = that rootfs + images/grading (the container side),
#   made by `docker import` with --change lines.
# - The test variants (inginious-agent-docker-test/*) are `FROM sample` + LABEL lines, made by
#   Docker's classic builder from a Dockerfile on stdin (no context, no network).
# Every image carries org.inginious-agent-docker.content = a hash of what went into it; an image
# whose tag already carries the right hash is left alone ("up to date").
#
# Environment: INGINIOUS_AGENT_CACHE (cache dir), DEBIAN_MIRROR (default http://deb.debian.org/debian).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${INGINIOUS_AGENT_CACHE:-/var/cache/inginious-agent-docker}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITE=bookworm
PACKAGES=python3,python3-msgpack,procps
# Everything that decides the content of the rootfs tarball (bump the version when the recipe changes).
ROOTFS_RECIPE="rootfs-v1 debootstrap --variant=minbase --include=$PACKAGES $SUITE; trimmed: docs man info locale apt-lists apt-cache"

SAMPLE=inginious-agent-docker/sample:latest
TEST_PREFIX=inginious-agent-docker-test
CONTENT_LABEL=org.inginious-agent-docker.content

usage() { sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

sample_only=0
for arg in "$@"; do
  case "$arg" in
    --sample-only) sample_only=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "build.sh: unknown argument: $arg" >&2; usage >&2; exit 2 ;;
  esac
done

die() { echo "build.sh: $*" >&2; exit 1; }

command -v docker >/dev/null || die "docker is missing (run scripts/ensure-docker.sh)"
command -v python3 >/dev/null || die "python3 is missing (run scripts/ensure-docker.sh)"
docker info >/dev/null 2>&1 || die "the Docker engine does not answer (run scripts/ensure-docker.sh)"

# ------------------------------------------------------------------ cleanup of what this run makes

TEMP_DIRS=()
cleanup() {
  local dir mnt
  for dir in "${TEMP_DIRS[@]+"${TEMP_DIRS[@]}"}"; do
    [ -e "$dir" ] || continue
    # debootstrap mounts /proc and /sys inside its target: unmount before deleting.
    while read -r mnt; do
      umount -l "$mnt" 2>/dev/null || true
    done < <(awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r)
    rm -rf --one-file-system "$dir" || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$CACHE"
# One build at a time per cache (parallel test runs may all call this script).
exec 9>"$CACHE/.build.lock"
flock 9

# ------------------------------------------------------------------ helpers

sha() { sha256sum | cut -c1-64; }

label_of() {  # TAG LABEL -> value, empty when the image or the label is missing
  docker image inspect --format "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null || true
}

id_of() { docker image inspect --format '{{.Id}}' "$1" 2>/dev/null || true; }

created_of() {  # TAG -> Created, in whole seconds since the epoch (what the image list API reports)
  date -d "$(docker image inspect --format '{{.Created}}' "$1")" +%s
}

OLD_IDS=()  # images replaced by this run, removed at the end when nothing tags them any more
remember_old() {
  local id; id="$(id_of "$1")"
  if [ -n "$id" ]; then OLD_IDS+=("$id"); fi
}

remove_replaced() {
  local i id tags
  for (( i=${#OLD_IDS[@]}-1; i>=0; i-- )); do
    id="${OLD_IDS[$i]}"
    tags="$(docker image inspect --format '{{len .RepoTags}}' "$id" 2>/dev/null || echo gone)"
    if [ "$tags" = 0 ]; then
      docker rmi "$id" >/dev/null 2>&1 || echo "build.sh: note: kept the replaced image $id for now (other images or containers use it; a later run removes it)" >&2
    fi
  done
  # Left-overs of earlier runs (e.g. kept above because a container was using them then).
  for id in $(docker images -q --no-trunc -f dangling=true -f "label=$CONTENT_LABEL"); do
    docker rmi "$id" >/dev/null 2>&1 || true
  done
}

report() { printf '%-52s %s\n' "$1" "$2"; }

elapsed() {  # START (date +%s%N) -> "12.3 s"
  local ms=$(( ($(date +%s%N) - $1) / 1000000 ))
  printf '%d.%d s' $(( ms / 1000 )) $(( ms % 1000 / 100 ))
}

# The content hash of the sample: the rootfs recipe plus every file under images/ except docs.
content_hash() {
  {
    printf '%s\n' "$ROOTFS_RECIPE"
    (cd "$HERE" && find . -type f ! -name '*.md' ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 \
      | LC_ALL=C sort -z | xargs -0 sha256sum)
  } | sha
}

# ------------------------------------------------------------------ the base rootfs (cached)

ROOTFS_TARBALL=
rootfs_tarball() {  # sets ROOTFS_TARBALL to the cached tarball, making it when missing
  local key tarball tmp started
  key="$(printf '%s\n' "$ROOTFS_RECIPE" | sha | cut -c1-16)"
  tarball="$CACHE/rootfs-$SUITE-$key.tar"
  ROOTFS_TARBALL="$tarball"
  if [ -s "$tarball" ]; then
    return
  fi
  [ "$(id -u)" = 0 ] || die "debootstrap needs root"
  command -v debootstrap >/dev/null || die "debootstrap is missing (run scripts/ensure-docker.sh)"
  tmp="$(mktemp -d "$CACHE/.rootfs.XXXXXX")"
  TEMP_DIRS+=("$tmp")
  started=$(date +%s)
  echo "build.sh: debootstrap $SUITE from $MIRROR (about 1-2 minutes)..." >&2
  if ! debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$tmp/root" "$MIRROR" >"$tmp/debootstrap.log" 2>&1; then
    tail -n 30 "$tmp/debootstrap.log" >&2
    die "debootstrap failed (log above)"
  fi
  # Keep it small: nothing here is needed to run python3 in a container.
  (
    cd "$tmp/root"
    rm -rf var/cache/apt/archives/*.deb var/cache/apt/*.bin var/lib/apt/lists/* \
      usr/share/man/* usr/share/info/* usr/share/locale/* var/log/bootstrap.log debootstrap
    find usr/share/doc -mindepth 1 ! -name copyright ! -type d -delete 2>/dev/null || true
    find usr/share/doc -mindepth 1 -type d -empty -delete 2>/dev/null || true
  )
  tar --numeric-owner -C "$tmp/root" -cf "$tmp/rootfs.tar" \
    --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' --exclude='./run/*' --exclude='./tmp/*' .
  rm -f "$CACHE"/rootfs-"$SUITE"-*.tar
  mv "$tmp/rootfs.tar" "$tarball"
  echo "build.sh: cached $tarball ($(du -m "$tarball" | cut -f1) MB, $(( $(date +%s) - started )) s)" >&2
}

# ------------------------------------------------------------------ images

CONTENT="$(content_hash)"

build_sample() {
  local started
  if [ "$(label_of "$SAMPLE" "$CONTENT_LABEL")" = "$CONTENT" ]; then
    report "$SAMPLE" "up to date"
    return
  fi
  started=$(date +%s%N)
  rootfs_tarball
  remember_old "$SAMPLE"
  python3 "$HERE/compose-rootfs.py" "$ROOTFS_TARBALL" "$HERE/grading" | docker import \
    --change 'CMD ["/usr/local/bin/INGInious"]' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'LABEL org.inginious.grading.name=default' \
    --change 'LABEL org.inginious.grading.agent_version=4' \
    --change "LABEL org.opencontainers.image.description=\"inginious-agent-docker sample grading image\"" \
    --change "LABEL $CONTENT_LABEL=$CONTENT" \
    - "$SAMPLE" >/dev/null
  report "$SAMPLE" "built ($(elapsed "$started"))"
}

# build_variant NAME 'LABEL ...' [FORCE] [INSTRUCTION]: inginious-agent-docker-test/NAME:latest =
# sample + those labels (+ one more Dockerfile instruction, such as a CMD).
# Sets VARIANT_BUILT to 1 when it was built, 0 when it was up to date.
VARIANT_BUILT=0
build_variant() {
  local tag="$TEST_PREFIX/$1:latest" labels="$2" force="${3:-0}" extra="${4:-}" dockerfile hash out started
  dockerfile="FROM $SAMPLE${extra:+
$extra}
LABEL $labels org.opencontainers.image.description=\"inginious-agent-docker test image $1\""
  hash="$(printf '%s\n%s\n' "$CONTENT" "$dockerfile" | sha)"
  VARIANT_BUILT=0
  if [ "$force" = 0 ] && [ "$(label_of "$tag" "$CONTENT_LABEL")" = "$hash" ]; then
    report "$tag" "up to date"
    return 0
  fi
  started=$(date +%s%N)
  remember_old "$tag"
  # A single LABEL instruction: the classic builder makes an intermediate image per instruction.
  if ! out="$(printf '%s %s=%s\n' "$dockerfile" "$CONTENT_LABEL" "$hash" \
      | DOCKER_BUILDKIT=0 docker build --no-cache --force-rm --network none -q -t "$tag" - 2>&1)"; then
    echo "$out" >&2
    die "docker build of $tag failed"
  fi
  VARIANT_BUILT=1
  report "$tag" "built ($(elapsed "$started"))"
}

build_sample
if [ "$sample_only" = 0 ]; then
  build_variant test-ssh 'org.inginious.grading.name=test-ssh org.inginious.grading.ports="22"'
  build_variant test-root 'org.inginious.grading.name=test-root org.inginious.grading.need_root="true"'
  build_variant test-hidden 'org.inginious.grading.name=test-hidden org.inginious.grading.advertise="false"'
  build_variant test-oldversion 'org.inginious.grading.name=test-oldversion org.inginious.grading.agent_version="3"'
  # Two images with one environment name: "new" must be strictly newer, in whole seconds (the
  # image list API's Created), so it is rebuilt whenever "old" is.
  build_variant test-dup-old 'org.inginious.grading.name=test-dup org.inginious-agent-docker.variant=old'
  old_built=$VARIANT_BUILT
  old_created="$(created_of "$TEST_PREFIX/test-dup-old:latest")"
  force_new=0
  if [ "$old_built" = 1 ] || [ -z "$(id_of "$TEST_PREFIX/test-dup-new:latest")" ] \
      || [ "$(created_of "$TEST_PREFIX/test-dup-new:latest")" -le "$old_created" ]; then
    force_new=1
    while [ "$(date +%s)" -le "$old_created" ]; do sleep 0.2; done
  fi
  build_variant test-dup-new 'org.inginious.grading.name=test-dup org.inginious-agent-docker.variant=new' "$force_new"
  # A grading container that runs the task's own raw.py instead of the container side: tests use
  # it to send the agent malformed, hostile or truncated output.
  build_variant test-raw 'org.inginious.grading.name=test-raw' 0 'CMD ["/usr/bin/python3", "-u", "/task/raw.py"]'
  # A grading container whose entry spends 2 s of CPU before the container side waits for
  # `start`: a warm one must not charge that to its job (CPU and wall time count from `start`).
  build_variant test-slow-start 'org.inginious.grading.name=test-slow-start' 0 \
    'CMD ["/usr/bin/python3", "-c", "import os, time; all(time.process_time() < 2 for _ in iter(int, 1)); os.execv(\"/usr/local/bin/INGInious\", [\"/usr/local/bin/INGInious\"])"]'
fi
remove_replaced
