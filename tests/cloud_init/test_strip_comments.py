"""The cloud-config's comment lines are dropped in the templates: nothing else may change."""

from __future__ import annotations

import yaml

from provisioner.userdata import USER_DATA, strip_comments


def test_stripping_comments_keeps_every_value_of_the_cloud_config() -> None:
    source = USER_DATA.read_text()
    stripped = strip_comments(source)
    assert yaml.safe_load(stripped) == yaml.safe_load(source)
    assert stripped.startswith("#cloud-config\n")
    assert len(stripped) < len(source)


def test_comment_like_lines_inside_file_contents_are_kept() -> None:
    config = (
        "#cloud-config\n"
        "# a comment\n"
        "write_files:\n"
        "  - path: /x.sh\n"
        "    content: |\n"
        "      #!/bin/sh\n"
        "      # a comment of the script\n"
        "\n"
        "      echo ok\n"
        "  # another comment\n"
        "  - content: |2-\n"
        "      # kept too\n"
        "    path: /y\n"
    )
    stripped = strip_comments(config)
    assert yaml.safe_load(stripped) == yaml.safe_load(config)
    assert "a comment\n" not in stripped.replace("a comment of the script", "")
    assert "another comment" not in stripped
