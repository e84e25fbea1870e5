"""The evaluation data is found through TOKENBRAKE_SHARED_DATA or beside the checkout, and a
missing file says where it was looked for."""

import pytest

from tokenbrake.evaluation.shared_data import CHECKOUT, shared_data


def test_the_folder_the_variable_names_is_looked_in_first(tmp_path, monkeypatch):
    (tmp_path / "routing").mkdir()
    monkeypatch.setenv("TOKENBRAKE_SHARED_DATA", str(tmp_path))
    assert shared_data("routing") == tmp_path / "routing"


def test_without_the_variable_the_data_beside_the_checkout_is_used(monkeypatch):
    monkeypatch.delenv("TOKENBRAKE_SHARED_DATA", raising=False)
    assert (CHECKOUT / "pyproject.toml").exists()  # the checkout, not a folder inside the package
    assert shared_data("routing") == CHECKOUT.parent / "shared" / "data" / "routing"


def test_missing_data_names_every_place_looked_in_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("TOKENBRAKE_SHARED_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError) as caught:
        shared_data("nothing", "here.json")
    message = str(caught.value)
    assert str(tmp_path / "nothing" / "here.json") in message
    assert str(CHECKOUT.parent / "shared" / "data" / "nothing" / "here.json") in message
    assert "TOKENBRAKE_SHARED_DATA" in message
