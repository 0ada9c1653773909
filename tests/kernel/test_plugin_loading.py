"""Discovery through real entry points (fake dist-info folders on sys.path)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from armillary._config import config_from_dict
from armillary._errors import ConfigError, PluginLoadError, RegistrationError
from armillary._kernel import build_kernel
from tests.support.fake_dists import TOOL_PLUGIN, install_plugin


def kernel_for(enable: list[str] | None = None, **sections: dict[str, object]):  # type: ignore[no-untyped-def]
    kernel_section: dict[str, object] = {"store": "memory://"}
    if enable is not None:
        kernel_section["enable"] = enable
    data = {"kernel": kernel_section, "plugins": sections}
    return build_kernel(config_from_dict(data))


def test_an_installed_plugin_is_listed_with_its_distribution_and_version(site: Path) -> None:
    install_plugin(site, "echoer", TOOL_PLUGIN.format(tool="echo_a"), version="1.2.3")
    kernel = kernel_for(enable=["echoer"])
    info = next(i for i in kernel.plugins if i.name == "echoer")
    assert (info.distribution, info.version, info.status) == ("armillary-echoer", "1.2.3", "loaded")
    assert kernel.registry.tools["echo_a"][0] == "echoer"
    assert info.registered == {"tools": ["echo_a"]}


def test_a_disabled_plugin_is_never_imported(site: Path) -> None:
    wanted = install_plugin(site, "wanted", TOOL_PLUGIN.format(tool="echo_w"))
    unwanted = install_plugin(site, "unwanted", TOOL_PLUGIN.format(tool="echo_u"))
    probe = (
        "import sys, json\n"
        "from armillary._config import config_from_dict\n"
        "from armillary._kernel import build_kernel\n"
        "k = build_kernel(config_from_dict({'kernel': {'enable': ['wanted'],"
        " 'store': 'memory://'}}))\n"
        f"print(json.dumps({{'wanted': {wanted!r} in sys.modules,"
        f" 'unwanted': {unwanted!r} in sys.modules,"
        " 'listed': [i.name for i in k.plugins]}))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True)
    seen = json.loads(out.stdout)
    assert seen["wanted"] is True
    assert seen["unwanted"] is False
    assert "unwanted" in seen["listed"]


def test_enable_omitted_loads_every_installed_plugin_except_disabled(site: Path) -> None:
    install_plugin(site, "one", TOOL_PLUGIN.format(tool="echo_1"))
    install_plugin(site, "two", TOOL_PLUGIN.format(tool="echo_2"))
    kernel = build_kernel(config_from_dict({"kernel": {"store": "memory://",
                                                       "disable": ["two"]}}))
    status = {i.name: i.status for i in kernel.plugins}
    assert status["one"] == "loaded"
    assert status["two"] == "disabled"


def test_an_unknown_plugin_name_gets_a_did_you_mean(site: Path) -> None:
    install_plugin(site, "calendar", TOOL_PLUGIN.format(tool="echo_c"))
    with pytest.raises(ConfigError) as info:
        kernel_for(enable=["calender"])
    message = str(info.value)
    assert "unknown plugin 'calender'" in message
    assert "did you mean 'calendar'?" in message
    assert "Installed plugins:" in message and "calendar" in message


def test_a_settings_section_for_an_unknown_plugin_is_refused(site: Path) -> None:
    install_plugin(site, "calendar", TOOL_PLUGIN.format(tool="echo_c2"))
    with pytest.raises(ConfigError) as info:
        kernel_for(enable=["calendar"], calender={"x": 1})
    assert "[plugins.calender]: unknown plugin" in str(info.value)
    assert "did you mean 'calendar'?" in str(info.value)


BROKEN_IMPORT = "raise RuntimeError('cannot find libfoo')\n"


def test_an_explicitly_enabled_plugin_that_fails_to_import_stops_startup(site: Path) -> None:
    install_plugin(site, "broken", BROKEN_IMPORT)
    with pytest.raises(PluginLoadError) as info:
        kernel_for(enable=["broken"])
    assert "plugin 'broken'" in str(info.value)
    assert "RuntimeError: cannot find libfoo" in str(info.value)


def test_an_implicitly_enabled_plugin_that_fails_is_reported_and_skipped(site: Path) -> None:
    install_plugin(site, "broken", BROKEN_IMPORT)
    install_plugin(site, "fine", TOOL_PLUGIN.format(tool="echo_f"))
    kernel = kernel_for()
    broken = next(i for i in kernel.plugins if i.name == "broken")
    assert broken.status == "failed"
    assert broken.error == "RuntimeError: cannot find libfoo"
    assert "echo_f" in kernel.registry.tools


RAISES_IN_HOOK = '''
from armillary import hookimpl, tool

@tool
def half_registered(x: int) -> int:
    """Never kept."""
    return x

@hookimpl
def register_tools(register):
    register(half_registered)
    raise ValueError("database is down")
'''


def test_a_hook_that_raises_while_registering_is_named(site: Path) -> None:
    install_plugin(site, "flaky", RAISES_IN_HOOK)
    with pytest.raises(PluginLoadError) as info:
        kernel_for(enable=["flaky"])
    assert "plugin 'flaky' failed while registering: ValueError: database is down" \
        in str(info.value)


def test_a_failed_registration_is_rolled_back_when_skipped(site: Path) -> None:
    install_plugin(site, "flaky", RAISES_IN_HOOK)
    kernel = kernel_for()
    assert "half_registered" not in kernel.registry.tools
    assert next(i for i in kernel.plugins if i.name == "flaky").status == "failed"


def test_two_plugins_registering_one_tool_name_are_both_named(site: Path) -> None:
    install_plugin(site, "alpha", TOOL_PLUGIN.format(tool="echo"))
    install_plugin(site, "beta", TOOL_PLUGIN.format(tool="echo"))
    with pytest.raises(RegistrationError) as info:
        kernel_for(enable=["alpha", "beta"])
    assert "tool 'echo' is registered by both plugin 'alpha' and plugin 'beta'" \
        in str(info.value)


def test_a_misspelt_hook_implementation_fails_loudly(site: Path) -> None:
    install_plugin(site, "typo", "from armillary import hookimpl\n\n"
                                 "@hookimpl\ndef register_tool(register):\n    pass\n")
    with pytest.raises(RegistrationError) as info:
        kernel_for(enable=["typo"])
    assert "typo" in str(info.value)
    assert "register_tool" in str(info.value)


SETTINGS_PLUGIN = '''
from pydantic import BaseModel
from armillary import hookimpl, tool

class Settings(BaseModel):
    greeting: str = "hello"
    times: int = 1

@hookimpl
def settings_model():
    return Settings

@hookimpl
def register_tools(register, settings):
    @tool(name="greet")
    def greet(name: str) -> str:
        """Greet someone."""
        return " ".join([f"{settings.greeting} {name}"] * settings.times)
    register(greet)
'''


def test_plugin_settings_are_validated_and_passed_to_its_hooks(site: Path) -> None:
    install_plugin(site, "greeter", SETTINGS_PLUGIN)
    kernel = kernel_for(enable=["greeter"], greeter={"greeting": "hi", "times": 2})
    assert kernel.settings["greeter"].greeting == "hi"
    assert kernel.registry.tools["greet"][1].fn(name="Ada") == "hi Ada hi Ada"


def test_unknown_and_mistyped_plugin_settings_name_section_and_field(site: Path) -> None:
    install_plugin(site, "greeter", SETTINGS_PLUGIN)
    with pytest.raises(ConfigError) as info:
        kernel_for(enable=["greeter"], greeter={"greting": "hi", "times": "many"})
    message = str(info.value)
    assert "[plugins.greeter] greting: unknown key (known: greeting, times)" in message
    assert "[plugins.greeter] times: Input should be a valid integer" in message


def test_settings_for_a_plugin_without_a_model_are_refused(site: Path) -> None:
    install_plugin(site, "plain", TOOL_PLUGIN.format(tool="echo_p"))
    with pytest.raises(ConfigError) as info:
        kernel_for(enable=["plain"], plain={"anything": 1})
    assert "[plugins.plain]: this plugin takes no settings" in str(info.value)


AGENT_PLUGIN = '''
from armillary import hookimpl
from armillary._models import AgentSpec

@hookimpl
def register_agents(register):
    register(AgentSpec(name="general", description="Shipped helper",
                       instructions="The shipped prompt.", model="small"))
'''


def test_a_partial_agent_table_overrides_only_what_it_sets(site: Path) -> None:
    install_plugin(site, "shipper", AGENT_PLUGIN)
    data = {"kernel": {"store": "memory://", "enable": ["shipper"]},
            "agents": {"general": {"model": "large"}}}
    kernel = build_kernel(config_from_dict(data))
    agent = kernel.agent("general")
    assert agent.model == "large"
    assert agent.description == "Shipped helper"
    assert agent.system_prompt() == "The shipped prompt."


def test_an_agent_naming_unknown_provider_tools_or_strategy_stops_startup(site: Path) -> None:
    install_plugin(site, "echoer", TOOL_PLUGIN.format(tool="echo_q"))
    data = {"kernel": {"store": "memory://", "enable": ["echoer"]},
            "agents": {"a": {"provider": "olama", "tools": ["echo_r"], "strategy": "debat"}}}
    with pytest.raises(ConfigError) as info:
        build_kernel(config_from_dict(data))
    message = str(info.value)
    assert "[agents.a] provider: no provider named 'olama'. Providers: (none)" in message
    assert "[agents.a] tools: no tool named 'echo_r'; did you mean 'echo_q'?" in message
    assert "[agents.a] strategy: no strategy named 'debat'" in message


def test_a_hook_with_a_parameter_the_spec_lacks_is_a_load_failure(site: Path) -> None:
    install_plugin(site, "odd", "from armillary import hookimpl\n\n"
                                "@hookimpl\ndef register_tools(reg):\n    pass\n")
    install_plugin(site, "fine", TOOL_PLUGIN.format(tool="echo_ok"))
    kernel = kernel_for()  # not asked for by name: reported and skipped
    odd = next(i for i in kernel.plugins if i.name == "odd")
    assert odd.status == "failed"
    assert "reg" in (odd.error or "")
    assert "echo_ok" in kernel.registry.tools
    with pytest.raises(PluginLoadError) as info:
        kernel_for(enable=["odd"])
    assert "plugin 'odd'" in str(info.value)


def test_a_settings_model_hook_that_misbehaves_is_a_load_failure(site: Path) -> None:
    install_plugin(site, "dicty", "from armillary import hookimpl\n\n"
                                  "@hookimpl\ndef settings_model():\n    return {'a': 1}\n")
    kernel = kernel_for()
    dicty = next(i for i in kernel.plugins if i.name == "dicty")
    assert dicty.status == "failed"
    assert "settings_model must return a pydantic model class" in (dicty.error or "")
    with pytest.raises(PluginLoadError) as info:
        kernel_for(enable=["dicty"])
    assert "plugin 'dicty' failed in settings_model" in str(info.value)


def test_an_async_registration_hook_is_refused_by_name(site: Path) -> None:
    install_plugin(site, "eager", "from armillary import hookimpl\n\n"
                                  "@hookimpl\nasync def register_tools(register):\n"
                                  "    pass\n")
    with pytest.raises(RegistrationError) as info:
        kernel_for(enable=["eager"])
    assert "plugin 'eager': register_tools must be a plain function" in str(info.value)


def test_a_misspelt_hook_names_the_plugin_and_the_hook_it_meant(site: Path) -> None:
    install_plugin(site, "typo2", "from armillary import hookimpl\n\n"
                                  "@hookimpl\ndef register_tool(register):\n    pass\n")
    with pytest.raises(RegistrationError) as info:
        kernel_for(enable=["typo2"])
    assert str(info.value).startswith(
        "plugin 'typo2' implements an unknown hook 'register_tool'; "
        "did you mean 'register_tools'?")
