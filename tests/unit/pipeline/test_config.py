from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline.config import DEFAULTS_PATH, ConfigError, PipelineConfig, load_config

pytestmark = pytest.mark.unit


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "params.yml"
    path.write_text(text, encoding="utf-8")
    return path


def test_checked_in_parameters_equal_the_model_defaults() -> None:
    """parameters.yml holds a default for every field and no key the models lack."""
    on_disk = yaml.safe_load(DEFAULTS_PATH.read_text(encoding="utf-8"))
    assert on_disk == PipelineConfig().model_dump()


def test_no_default_is_repeated_in_the_code() -> None:
    """Every field's default is read from parameters.yml: the models hold no literal default."""
    sections = [PipelineConfig, *(f.annotation for f in PipelineConfig.model_fields.values())]
    literal = [
        f"{model.__name__}.{name}"
        for model in sections
        if isinstance(model, type) and issubclass(model, PipelineConfig.__base__)
        for name, field in model.model_fields.items()
        if field.default_factory is None
    ]
    assert literal == []


def test_loads_the_defaults_without_a_file() -> None:
    """Without a file the config is PipelineConfig's defaults."""
    assert load_config() == PipelineConfig()


def test_a_user_file_overrides_only_the_keys_it_names(tmp_path: Path) -> None:
    """A user file overrides only the keys it names; the rest keep their defaults."""
    cfg = load_config(write(tmp_path, "data:\n  seed: 7\ngates:\n  min_auc: 0.8\n"))
    assert cfg.data.seed == 7
    assert cfg.gates.min_auc == 0.8
    assert cfg.data.n_rows == PipelineConfig().data.n_rows
    assert cfg.model == PipelineConfig().model


def test_an_out_of_range_value_is_named_with_its_dotted_path(tmp_path: Path) -> None:
    """An out-of-range value is reported with its dotted path, the rule and the value."""
    with pytest.raises(ConfigError, match=r"gates\.min_auc: .*less than or equal to 1.*1\.5"):
        load_config(write(tmp_path, "gates:\n  min_auc: 1.5\n"))


def test_a_misspelt_key_is_refused_by_name(tmp_path: Path) -> None:
    """A misspelt key is refused, naming it with its dotted path."""
    with pytest.raises(ConfigError, match=r"model\.learning_rat: Extra inputs are not permitted"):
        load_config(write(tmp_path, "model:\n  learning_rat: 0.1\n"))


def test_a_wrong_type_is_named(tmp_path: Path) -> None:
    """A value of the wrong type is refused, naming the key and the expected type."""
    with pytest.raises(ConfigError, match=r"data\.n_rows: .*integer"):
        load_config(write(tmp_path, "data:\n  n_rows: many\n"))


def test_inconsistent_bounds_name_the_section(tmp_path: Path) -> None:
    """Inconsistent bounds are refused, naming the section and the rule."""
    with pytest.raises(ConfigError, match=r"validation: .*min_rows must not exceed max_rows"):
        load_config(write(tmp_path, "validation:\n  min_rows: 10\n  max_rows: 5\n"))


def test_every_error_is_listed_not_just_the_first(tmp_path: Path) -> None:
    """Every invalid key is listed in the error, not only the first."""
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, "gates:\n  min_auc: 2\n  confidence: 0.1\n"))
    assert "gates.min_auc" in str(caught.value)
    assert "gates.confidence" in str(caught.value)


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    """A missing config file is a ConfigError saying it cannot be read."""
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.yml")


def test_malformed_yaml_is_a_config_error(tmp_path: Path) -> None:
    """Malformed YAML is a ConfigError saying it is not valid YAML."""
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "data: [unclosed\n"))


def test_a_non_mapping_document_is_refused(tmp_path: Path) -> None:
    """A YAML document that is not a mapping is refused."""
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(write(tmp_path, "- 1\n- 2\n"))


def test_an_empty_file_means_defaults(tmp_path: Path) -> None:
    """An empty config file gives the defaults."""
    assert load_config(write(tmp_path, "")) == PipelineConfig()
