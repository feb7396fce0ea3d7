"""The template lints, and `sam build` without a container makes what Lambda on arm64 needs.

sam build runs once for the session (the sam_build fixture, tests/sam_build.py), into a temporary directory.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.cold_start_setup import built_sizes, lambda_like_layer
from tests.sam_build import SamBuild, find_python313, venv_tool

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
MONITORING = ROOT / "monitoring.yaml"  # template.yaml's nested stack Monitoring
FUNCTIONS = ("StartFunction", "CallbackFunction", "AdminFunction")
LAYER = "CoreLayer"
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer")  # the Lambda runtime carries them
EM_AARCH64 = 183
MACHINES = {3: "x86", 40: "ARM", 62: "x86-64", 183: "AArch64"}
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024


def elf_machine(path: Path) -> int | None:
    """e_machine of an ELF file (little-endian, bytes 18-19 of the header), None when it is not ELF."""
    with path.open("rb") as stream:
        header = stream.read(20)
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    return int.from_bytes(header[18:20], "little")


def shared_objects(directory: Path) -> list[Path]:
    return sorted(
        path
        for path in directory.rglob("*")
        if path.is_file() and (path.suffix == ".so" or ".so." in path.name)
    )


def test_cfn_lint_finds_nothing_in_the_template_or_its_nested_stack() -> None:
    result = subprocess.run(
        [venv_tool("cfn-lint"), str(TEMPLATE), str(MONITORING)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert result.returncode == 0, f"cfn-lint exited {result.returncode}:\n{result.stdout}\n{result.stderr}"


def test_sam_build_succeeds_without_a_container(sam_build: SamBuild) -> None:
    build_dir = sam_build.require()

    assert (build_dir / "template.yaml").is_file()


def test_the_build_carries_the_monitoring_stack_that_sam_deploy_uploads(sam_build: SamBuild) -> None:
    from broker_local.template import load_template

    built = sam_build.require()

    # The built template points its nested stack at a built copy that sam deploy packages with it
    location = load_template(built / "template.yaml")["Resources"]["Monitoring"]["Properties"]["Location"]
    nested = load_template(built / location)
    kinds = sorted(resource["Type"] for resource in nested["Resources"].values())
    assert kinds == [
        "AWS::CloudWatch::Alarm",
        "AWS::CloudWatch::Alarm",
        "AWS::CloudWatch::Alarm",
        "AWS::CloudWatch::Alarm",
        "AWS::CloudWatch::Alarm",
        "AWS::CloudWatch::Dashboard",
        "AWS::SNS::Subscription",
        "AWS::SNS::Topic",
    ]
    assert nested == load_template(MONITORING)


def test_every_built_function_has_its_handler(sam_build: SamBuild) -> None:
    build_dir = sam_build.require()

    missing = [function for function in FUNCTIONS if not (build_dir / function / "app.py").is_file()]

    assert not missing, (
        f"no app.py in the built {missing}; built: {sorted(p.name for p in build_dir.iterdir())}"
    )


def test_the_layer_holds_the_core_package_and_pydantic_core(sam_build: SamBuild) -> None:
    python = sam_build.require() / LAYER / "python"

    assert (python / "zoho_broker" / "integrations.json").is_file()
    assert (python / "pydantic_core").is_dir()


def test_every_shared_object_in_the_layer_is_aarch64(sam_build: SamBuild) -> None:
    layer = sam_build.require() / LAYER

    found = shared_objects(layer)
    machines = {path.relative_to(layer).as_posix(): elf_machine(path) for path in found}
    wrong = {
        name: "not ELF" if machine is None else MACHINES.get(machine, f"e_machine {machine}")
        for name, machine in machines.items()
        if machine != EM_AARCH64
    }

    assert found, "the layer has no .so at all; pydantic_core should bring one"
    assert not wrong, f"not built for arm64 (BuildArchitecture: arm64 missing?): {wrong}"


def test_the_layer_leaves_boto3_to_the_runtime(sam_build: SamBuild) -> None:
    python = sam_build.require() / LAYER / "python"

    bundled = sorted(entry.name for entry in python.iterdir() if entry.name.startswith(RUNTIME_PROVIDED))

    assert not bundled, f"the Lambda runtime provides these, the layer should not: {bundled}"


def test_functions_carry_no_third_party_packages(sam_build: SamBuild) -> None:
    build_dir = sam_build.require()

    extra = {
        function: sorted(entry.name for entry in (build_dir / function).iterdir())
        for function in FUNCTIONS
        if {entry.name for entry in (build_dir / function).iterdir()} - {"app.py", "__pycache__"}
    }

    assert not extra, f"functions should hold only app.py (dependencies belong in the layer): {extra}"


def test_the_built_sizes_fit_lambda(sam_build: SamBuild, capsys: pytest.CaptureFixture[str]) -> None:
    sizes = built_sizes(sam_build.require())

    with capsys.disabled():
        shown = ", ".join(f"{name} {size / 1024 / 1024:.2f} MB" for name, size in sizes.items())
        print(f"\nsam build sizes (unzipped): {shown}")
    assert set(FUNCTIONS) | {LAYER} <= set(sizes), sizes
    for function in FUNCTIONS:
        assert sizes[function] < 1024 * 1024, (
            f"{function} is {sizes[function]} bytes; only app.py belongs there"
        )
        assert sizes[function] + sizes[LAYER] < LAMBDA_UNZIPPED_LIMIT
    assert sizes[LAYER] > 1024 * 1024, (
        f"the layer is only {sizes[LAYER]} bytes; are its dependencies missing?"
    )


# The Lambda runtime's own packages (boto3 and what it needs), found in the environment running the tests.
RUNTIME_MODULES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3")
REGION = "eu-west-1"


def compiled_for(source: Path) -> Path:
    return source.parent / "__pycache__" / f"{source.stem}.cpython-313.pyc"


@pytest.fixture(scope="module")
def lambda_layout(sam_build: SamBuild, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The built layer as /opt/python (aarch64 extension modules swapped for local ones off arm64) and a
    directory holding only the runtime's boto3, as the Lambda runtime puts them on sys.path."""
    workdir = tmp_path_factory.mktemp("lambda")
    layer, _ = lambda_like_layer(sam_build.require() / LAYER / "python", workdir / "opt" / "python")
    runtime = workdir / "runtime"
    runtime.mkdir()
    for name in RUNTIME_MODULES:
        module = __import__(name)
        origin = Path(module.__file__ or "")
        source = origin.parent if origin.name == "__init__.py" else origin
        (runtime / source.name).symlink_to(source)
    return {"layer": layer, "runtime": runtime}


def run_built(
    layout: dict[str, Path], function_dir: Path, code: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """python3.13 without site-packages: the function's directory, the layer, then the runtime's boto3."""
    python313 = find_python313()
    assert python313 is not None, "python3.13 is needed to run what was built for it"
    path = os.pathsep.join([str(function_dir), str(layout["layer"]), str(layout["runtime"])])
    return subprocess.run(
        [str(python313), "-S", "-v", "-c", f"import sys; sys.path[:0] = {path.split(os.pathsep)!r}\n{code}"],
        cwd=function_dir,
        env={**(env or {}), "PYTHONDONTWRITEBYTECODE": "1", "PATH": os.environ.get("PATH", "")},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_python_file_of_the_layer_has_its_bytecode(sam_build: SamBuild) -> None:
    python = sam_build.require() / LAYER / "python"

    sources = sorted(python.rglob("*.py"))
    missing = [str(source.relative_to(python)) for source in sources if not compiled_for(source).is_file()]

    assert any(source.parts[-2:] == ("zoho_broker", "models.py") for source in sources)
    assert not missing, f"{len(missing)} of {len(sources)} files have no .pyc, e.g. {missing[:5]}"


def test_built_bytecode_is_used_even_when_the_sources_look_newer(
    sam_build: SamBuild, lambda_layout: dict[str, Path]
) -> None:
    # Lambda may give the files any mtime: the .pyc must not be checked against it.
    for source in lambda_layout["layer"].rglob("*.py"):
        os.utime(source)

    result = run_built(lambda_layout, sam_build.require() / "CallbackFunction", "import app")

    assert result.returncode == 0, result.stderr[-3000:]
    layer = str(lambda_layout["layer"])
    compiled_now = [
        line
        for line in result.stderr.splitlines()
        if line.startswith("# code object from") and layer in line and ".pyc" not in line
    ]
    used = [
        line for line in result.stderr.splitlines() if line.startswith("# code object from") and layer in line
    ]
    assert any("zoho_broker" in line for line in used), "the layer's zoho_broker was not imported"
    assert not compiled_now, f"compiled from source instead of the built .pyc: {compiled_now[:5]}"


@pytest.fixture(scope="module")
def moto_stack() -> Iterator[dict[str, dict[str, str]]]:
    """A moto server provisioned from the template; the environment each function gets."""
    from moto.server import ThreadedMotoServer

    from broker_local.functions import function_environment
    from broker_local.provision import session_for
    from broker_local.template import load_template, provision

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        template = load_template(TEMPLATE)
        stack = provision(template, session=session_for(endpoint, REGION))
        aws = {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
        }
        yield {function: {**function_environment(template, stack, function), **aws} for function in FUNCTIONS}
    finally:
        server.stop()


INVOKE = """
import json
import app

class Context:
    function_name = "build-test"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:build-test"
    aws_request_id = "build-test"

with open({event!r}, encoding="utf-8") as stream:
    answer = app.handler(json.load(stream), Context())
print("ANSWER " + json.dumps({{"status": answer["statusCode"], "body": answer.get("body", "")}}))
"""


@pytest.mark.parametrize(
    ("function", "event", "status", "shown"),
    [
        ("StartFunction", "start-connect.json", 410, "This connect link can&#x27;t be used"),
        ("StartFunction", "start-connect-continue.json", 410, "This connect link can&#x27;t be used"),
        ("CallbackFunction", "callback.json", 400, "incomplete or damaged"),
    ],
)
def test_a_built_function_answers_a_sample_event_as_from_source(
    sam_build: SamBuild,
    lambda_layout: dict[str, Path],
    moto_stack: dict[str, dict[str, str]],
    function: str,
    event: str,
    status: int,
    shown: str,
) -> None:
    code = INVOKE.format(event=str(ROOT / "events" / event))

    result = run_built(lambda_layout, sam_build.require() / function, code, moto_stack[function])

    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(result.stdout.rsplit("ANSWER ", 1)[1])
    assert (answer["status"], shown in answer["body"]) == (status, True), answer


PERSON_FACING = {"StartFunction": "/connect/{link}", "CallbackFunction": "/oauth/callback"}


def sam_transformed(monkeypatch: pytest.MonkeyPatch, parameters: dict[str, str]) -> dict[str, Any]:
    """template.yaml as CloudFormation sees it after the SAM transform (code locations made up)."""
    from samtranslator.translator.transform import transform

    from broker_local.template import load_template

    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    template = load_template(TEMPLATE)
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = "s3://bucket/function.zip"
        if resource["Type"] == "AWS::Serverless::LayerVersion":
            resource["Properties"]["ContentUri"] = "s3://bucket/layer.zip"
        if resource["Type"] == "AWS::Serverless::Application":
            resource["Properties"]["Location"] = "https://bucket.s3.amazonaws.com/monitoring.yaml"

    class NoManagedPolicies:
        def load(self) -> dict[str, str]:
            return {}

    transformed: dict[str, Any] = transform(template, parameters, NoManagedPolicies())
    return transformed


def test_snapstart_is_off_unless_asked_for() -> None:
    from broker_local.template import load_template

    parameter = load_template(TEMPLATE)["Parameters"]["SnapStart"]

    assert (parameter["Default"], parameter["AllowedValues"]) == ("None", ["None", "PublishedVersions"])


def test_with_snapstart_the_api_invokes_the_published_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    resources = sam_transformed(monkeypatch, {"SnapStart": "PublishedVersions"})["Resources"]

    api = next(r for r in resources.values() if r["Type"] == "AWS::ApiGatewayV2::Api")
    for function, path in PERSON_FACING.items():
        assert resources[function]["Properties"]["SnapStart"] == {"ApplyOn": {"Ref": "SnapStart"}}
        alias = resources[f"{function}Aliaslive"]
        assert alias["Type"] == "AWS::Lambda::Alias"
        assert (
            resources[alias["Properties"]["FunctionVersion"]["Fn::GetAtt"][0]]["Type"]
            == "AWS::Lambda::Version"
        )
        for method in api["Properties"]["Body"]["paths"][path].values():
            uri = method["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"]
            assert f"${{{function}Aliaslive}}" in uri


def test_the_deployed_api_asks_for_a_signature_on_every_route_but_the_pages_a_person_opens(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    resources = sam_transformed(monkeypatch, {})["Resources"]

    api = next(r for r in resources.values() if r["Type"] == "AWS::ApiGatewayV2::Api")
    security = {
        (method, path): spec["security"]
        for path, methods in api["Properties"]["Body"]["paths"].items()
        for method, spec in methods.items()
    }
    public = {route for route, needs in security.items() if needs == [{"NONE": []}]}
    assert public == {("get", "/connect/{link}"), ("post", "/connect/{link}"), ("get", "/oauth/callback")}
    assert all(needs == [{"AWS_IAM": []}] for route, needs in security.items() if route not in public)
    assert len(security) == 23
