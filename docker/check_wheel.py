"""Checks a repaired tfsvd wheel before it is released; docker/build_wheel.sh runs it.

    python docker/check_wheel.py dist/tfsvd-*.whl

Exits 1 listing every problem found, 0 after printing a summary. Needs `packaging` and
`pyelftools` (both come with auditwheel). What a release wheel must be:

* tagged cpXY-cpXY-manylinux_*_<arch> (auditwheel repair ran), WHEEL tags matching the file name;
* Requires-Dist: tensorflow pinned to exactly the TensorFlow minor recorded in _build_config.py
  (an op library only loads into that minor), numpy and scipy-openblas32 unconditionally;
* the package's own files only: no <name>.libs/ directory, no libtensorflow_framework, CUDA or
  OpenBLAS library anywhere in it (they come from their own wheels);
* every RPATH/RUNPATH entry relative ($ORIGIN...); the op library finds libtensorflow_framework.so.2
  through $ORIGIN/../tensorflow and libscipy_openblas.so through $ORIGIN/../scipy_openblas32/lib;
* no link-time (DT_NEEDED) dependency on a CUDA library: CUDA libraries are dlopen'ed lazily so a
  CPU-only install works.
"""

import ast
import fnmatch
import io
import re
import sys
import zipfile

try:
    from elftools.common.exceptions import ELFError
    from elftools.elf.dynamic import DynamicSection
    from elftools.elf.elffile import ELFFile
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name, parse_wheel_filename
except ImportError as error:  # pragma: no cover
    sys.exit(f"check_wheel: {error}; pip install auditwheel (it brings pyelftools and packaging)")

# Libraries that must never be inside the wheel: they belong to other distributions.
FORBIDDEN_LIBRARIES = [
    "libtensorflow*", "libtf_*", "libcuda*", "libcudart*", "libcublas*", "libcusolver*",
    "libcusparse*", "libcufft*", "libcurand*", "libcudnn*", "libnccl*", "libnv*",
    "libopenblas*", "libscipy_openblas*", "libgfortran*",
]
# DT_NEEDED entries that are not allowed (CUDA must be loaded with dlopen).
FORBIDDEN_NEEDED = ["libcuda*", "libcudart*", "libcublas*", "libcusolver*", "libcusparse*",
                    "libcufft*", "libcurand*", "libcudnn*", "libnccl*", "libnv*"]
OPS_LIBRARY = "tfsvd/_tfsvd_ops.so"
REQUIRED_FILES = ["tfsvd/__init__.py", "tfsvd/_loader.py", "tfsvd/_build_config.py", OPS_LIBRARY]
TF_RUNPATH = "$ORIGIN/../tensorflow"
OPENBLAS_RUNPATH = "$ORIGIN/../scipy_openblas32/lib"


def dynamic_entries(data):
    """(NEEDED list, RPATH+RUNPATH list) of an ELF file given as bytes."""
    elf = ELFFile(io.BytesIO(data))
    needed, paths = [], []
    for section in elf.iter_sections():
        if not isinstance(section, DynamicSection):
            continue
        for tag in section.iter_tags():
            if tag.entry.d_tag == "DT_NEEDED":
                needed.append(tag.needed)
            elif tag.entry.d_tag == "DT_RPATH":
                paths += tag.rpath.split(":")
            elif tag.entry.d_tag == "DT_RUNPATH":
                paths += tag.runpath.split(":")
    return needed, paths


def matches(name, patterns):
    return any(fnmatch.fnmatch(name, p) for p in patterns)


def check(path):
    problems, facts = [], {}
    filename = path.rsplit("/", 1)[-1]
    name, version, _, tags = parse_wheel_filename(filename)
    interpreters = {t.interpreter for t in tags}
    abis = {t.abi for t in tags}
    platforms = {t.platform for t in tags}
    facts["tags"] = sorted(str(t) for t in tags)
    if not all(re.fullmatch(r"cp3\d+", i) for i in interpreters) or abis != interpreters:
        problems.append(f"python/abi tags {sorted(interpreters)}/{sorted(abis)}: expected cpXY-cpXY")
    if not all(re.fullmatch(r"manylinux_\d+_\d+_(x86_64|aarch64)", p) for p in platforms):
        problems.append(f"platform tags {sorted(platforms)}: expected manylinux_X_Y_<arch> only "
                        "(did auditwheel repair run?)")

    dist_info = f"{name.replace('-', '_')}-{version}.dist-info"
    with zipfile.ZipFile(path) as wheel:
        names = wheel.namelist()
        files = [n for n in names if not n.endswith("/")]
        metadata = wheel.read(f"{dist_info}/METADATA").decode()
        wheel_info = wheel.read(f"{dist_info}/WHEEL").decode()
        build_config = wheel.read("tfsvd/_build_config.py").decode() if "tfsvd/_build_config.py" in names else ""
        elves = {n: wheel.read(n) for n in files if re.search(r"\.so(\.|$)", n.rsplit("/", 1)[-1])}

    # WHEEL metadata agrees with the file name.
    wheel_tags = set(re.findall(r"^Tag: (\S+)$", wheel_info, re.M))
    if wheel_tags != {str(t) for t in tags}:
        problems.append(f"WHEEL Tag lines {sorted(wheel_tags)} differ from the file name's tags")
    if "Root-Is-Purelib: false" not in wheel_info:
        problems.append("WHEEL: Root-Is-Purelib is not false")

    # Files.
    for required in REQUIRED_FILES:
        if required not in files:
            problems.append(f"missing {required}")
    if not any(re.fullmatch(r"tfsvd/_core\.cpython-\d+-[\w-]+\.so", f) for f in files):
        problems.append("missing the pybind11 module tfsvd/_core.cpython-*.so")
    outside = [f for f in files if not (f.startswith("tfsvd/") or f.startswith(f"{dist_info}/"))]
    if outside:
        problems.append(f"files outside tfsvd/ and {dist_info}/ (grafted libraries?): {outside}")
    bundled = [f for f in files if matches(f.rsplit("/", 1)[-1], FORBIDDEN_LIBRARIES)]
    if bundled:
        problems.append(f"bundles libraries that must come from their own wheels: {bundled}")
    facts["shared objects"] = sorted(elves)

    # Build facts and the TensorFlow pin.
    config = {}
    for node in ast.parse(build_config).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            config[node.targets[0].id] = ast.literal_eval(node.value)
    tf_version = config.get("TENSORFLOW_VERSION", "")
    facts["build"] = {k: config.get(k) for k in ("VERSION", "TENSORFLOW_VERSION", "CUDA",
                                                 "CUDA_ARCHITECTURES", "LAPACK", "COMPILER")}
    if config.get("VERSION") != str(version):
        problems.append(f"_build_config.VERSION {config.get('VERSION')!r} != wheel version {version}")
    if not re.match(r"\d+\.\d+\.", tf_version):
        problems.append(f"_build_config.TENSORFLOW_VERSION is {tf_version!r}")
        major = minor = None
    else:
        major, minor = (int(x) for x in tf_version.split(".")[:2])
        if tuple(config.get("TENSORFLOW_MAJOR_MINOR", ())) != (major, minor):
            problems.append("_build_config.TENSORFLOW_MAJOR_MINOR disagrees with TENSORFLOW_VERSION")

    requires = [Requirement(line.split(":", 1)[1].strip())
                for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    unconditional = {canonicalize_name(r.name): r for r in requires if r.marker is None}
    facts["Requires-Dist"] = [str(r) for r in unconditional.values()]
    for dep in ("numpy", "scipy-openblas32", "tensorflow"):
        if dep not in unconditional:
            problems.append(f"METADATA: no unconditional Requires-Dist on {dep}")
    tf_req = unconditional.get("tensorflow")
    if tf_req is not None and major is not None:
        inside = [f"{major}.{minor}.0", f"{major}.{minor}.99"]
        outside = [f"{major}.{minor - 1}.99", f"{major}.{minor + 1}.0", f"{major}.{minor + 1}.0rc0",
                   f"{major + 1}.0.0"]
        spec = tf_req.specifier
        if not all(spec.contains(v) for v in inside) or any(spec.contains(v, prereleases=True) for v in outside):
            problems.append(f"METADATA: {tf_req} does not pin TensorFlow to {major}.{minor}.*, "
                            f"the minor tfsvd was built against ({tf_version})")
    if tf_req is not None and tf_req.extras:
        problems.append(f"METADATA: {tf_req} has extras: CUDA packages must stay the user's choice")
    cuda_deps = [str(r) for r in unconditional.values() if canonicalize_name(r.name).startswith("nvidia-")]
    if cuda_deps:
        problems.append(f"METADATA: unconditional CUDA dependencies {cuda_deps}")

    # ELF: relative RUNPATHs, the libraries the op library needs, no CUDA link dependency.
    facts["elf"] = {}
    for member, data in sorted(elves.items()):
        try:
            needed, paths = dynamic_entries(data)
        except ELFError as error:
            problems.append(f"{member}: not a valid ELF file ({error})")
            continue
        facts["elf"][member] = {"NEEDED": needed, "RUNPATH": paths}
        absolute = [p for p in paths if not p.startswith("$ORIGIN")]
        if absolute:
            problems.append(f"{member}: RPATH/RUNPATH entries not relative to $ORIGIN: {absolute}")
        cuda = [n for n in needed if matches(n, FORBIDDEN_NEEDED)]
        if cuda:
            problems.append(f"{member}: links CUDA libraries {cuda} (they must be dlopen'ed)")
        if any(n.startswith("libtensorflow_framework") for n in needed) and TF_RUNPATH not in paths:
            problems.append(f"{member}: needs libtensorflow_framework but has no {TF_RUNPATH} RUNPATH")
        if "libscipy_openblas.so" in needed and OPENBLAS_RUNPATH not in paths:
            problems.append(f"{member}: needs libscipy_openblas.so but has no {OPENBLAS_RUNPATH} RUNPATH")
    ops = facts["elf"].get(OPS_LIBRARY)
    if ops is not None:
        for lib in ("libtensorflow_framework.so.2", "libscipy_openblas.so"):
            if lib not in ops["NEEDED"]:
                problems.append(f"{OPS_LIBRARY} does not link {lib}")
    return problems, facts


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    problems, facts = check(argv[1])
    print(f"check_wheel: {argv[1]}")
    for key, value in facts.items():
        if key == "elf":
            for member, entries in value.items():
                print(f"  {member}: NEEDED {entries['NEEDED']}, RUNPATH {entries['RUNPATH']}")
        else:
            print(f"  {key}: {value}")
    if problems:
        print("check_wheel: FAILED", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    print("check_wheel: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
