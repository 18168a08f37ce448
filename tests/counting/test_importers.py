"""Importers (counting.training.importers): Pascal VOC head boxes and `.mat` point files into point folders, and the
whole layouts of SCUT-HEAD, Beijing-BRT and Mall, on small files of each format written here."""

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from counting.cli import main
from counting.training.datasets import load_annotated, point_folder
from counting.training.importers import (
    AnnotationFormatError,
    import_beijing_brt,
    import_mall,
    import_mat,
    import_scut_head,
    import_voc,
    mat_frame_points,
    mat_points,
    region_of_interest_path,
    scut_head_split,
    voc_head_points,
)


def write_image(path: Path, width: int = 64, height: int = 48) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), (90, 120, 150)).save(path)


def write_voc(path: Path, boxes: list[tuple[str, int, int, int, int]], size: tuple[int, int] = (64, 48)) -> None:
    """A Pascal VOC file as SCUT-HEAD ships them: (name, xmin, ymin, xmax, ymax), 1-based corners."""
    objects = "".join(
        f"<object><name>{name}</name><difficult>0</difficult><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
        f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
        for name, x0, y0, x1, y1 in boxes
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"<annotation><filename>{path.stem}.jpg</filename><size><width>{size[0]}</width>"
        f"<height>{size[1]}</height><depth>3</depth></size>{objects}</annotation>"
    )


def write_mat(path: Path, points: list[list[float]], variable: str = "loc") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {variable: np.asarray(points, dtype=np.float64).reshape(-1, 2)})


def stored_points(path: Path) -> np.ndarray:
    return np.asarray(json.loads(path.read_text())["points"]).reshape(-1, 2)


# Readers -----------------------------------------------------------------------------------------------------------


def test_voc_boxes_become_their_centres_in_continuous_pixels(tmp_path: Path) -> None:
    xml = tmp_path / "a.xml"
    write_voc(xml, [("head", 1, 1, 10, 20), ("Head", 31, 11, 40, 20), ("person", 1, 1, 64, 48)])
    # Box 1..10 covers pixels 0..9, i.e. [0, 10) in continuous coordinates: centre 5.
    np.testing.assert_allclose(voc_head_points(xml), [[5.0, 10.0], [35.0, 15.0]])
    np.testing.assert_allclose(voc_head_points(xml, labels=("person",)), [[32.0, 24.0]])


def test_voc_with_no_heads_gives_an_empty_point_array(tmp_path: Path) -> None:
    xml = tmp_path / "empty.xml"
    write_voc(xml, [])
    assert voc_head_points(xml).shape == (0, 2)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("<annotation><object>", "not a Pascal VOC annotation"),
        ("<annotation><object><name>head</name></object></annotation>", "no <bndbox>"),
        (
            "<annotation><object><name>head</name><bndbox><xmin>9</xmin><ymin>1</ymin><xmax>2</xmax>"
            "<ymax>5</ymax></bndbox></object></annotation>",
            "is not a box",
        ),
        (
            "<annotation><object><name>head</name><bndbox><xmin>one</xmin><ymin>1</ymin><xmax>2</xmax>"
            "<ymax>5</ymax></bndbox></object></annotation>",
            "not a Pascal VOC annotation",
        ),
    ],
)
def test_malformed_voc_names_the_file(tmp_path: Path, content: str, message: str) -> None:
    xml = tmp_path / "bad.xml"
    xml.write_text(content)
    with pytest.raises(AnnotationFormatError, match=message) as raised:
        voc_head_points(xml)
    assert "bad.xml" in str(raised.value)


def test_mat_points_read_the_named_variable(tmp_path: Path) -> None:
    write_mat(tmp_path / "a.mat", [[3.5, 4.0], [10.0, 20.25]])
    np.testing.assert_allclose(mat_points(tmp_path / "a.mat"), [[3.5, 4.0], [10.0, 20.25]])
    write_mat(tmp_path / "none.mat", [])
    assert mat_points(tmp_path / "none.mat").shape == (0, 2)


def test_mat_points_errors_name_the_file_and_what_is_there(tmp_path: Path) -> None:
    write_mat(tmp_path / "other.mat", [[1, 2]], variable="annPoints")
    with pytest.raises(AnnotationFormatError, match=r"other\.mat: no variable 'loc' \(found: annPoints\)"):
        mat_points(tmp_path / "other.mat")
    scipy.io.savemat(tmp_path / "flat.mat", {"loc": np.arange(3.0)})
    with pytest.raises(AnnotationFormatError, match=r"flat\.mat: 'loc' is \(1, 3\), not N x 2"):
        mat_points(tmp_path / "flat.mat")
    (tmp_path / "text.mat").write_text("not a mat file")
    with pytest.raises(AnnotationFormatError, match=r"text\.mat: not a MATLAB \.mat file"):
        mat_points(tmp_path / "text.mat")


# Folder importers --------------------------------------------------------------------------------------------------


def test_import_voc_writes_a_point_folder_that_the_loader_reads(tmp_path: Path) -> None:
    write_image(tmp_path / "src" / "f1.jpg")
    write_voc(tmp_path / "xml" / "f1.xml", [("head", 1, 1, 10, 10), ("head", 61, 41, 70, 50)])
    write_image(tmp_path / "src" / "f2.jpg")
    # SCUT-HEAD has files that give the size as 0: the image's own size decides what lies inside.
    write_voc(tmp_path / "xml" / "f2.xml", [("head", 21, 11, 30, 20)], size=(0, 0))
    summary = import_voc(tmp_path / "src", tmp_path / "xml", tmp_path / "out")
    # The second head of f1 is centred at (65, 45), outside the 64x48 image: dropped and reported.
    assert (summary.images, summary.heads, summary.dropped) == (2, 2, 1)
    samples = point_folder(tmp_path / "out")
    assert [s.image_path.name for s in samples] == ["f1.jpg", "f2.jpg"]
    np.testing.assert_allclose(samples[0].points, [[5.0, 5.0]])
    np.testing.assert_allclose(samples[1].points, [[25.0, 15.0]])
    assert (tmp_path / "out" / "f1.jpg").read_bytes() == (tmp_path / "src" / "f1.jpg").read_bytes()


def test_import_of_an_image_without_annotation_is_an_error(tmp_path: Path) -> None:
    write_image(tmp_path / "src" / "lonely.jpg")
    with pytest.raises(FileNotFoundError, match=r"lonely\.jpg has no annotation"):
        import_mat(tmp_path / "src", tmp_path / "src", tmp_path / "out")


def test_import_of_an_empty_folder_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    with pytest.raises(FileNotFoundError, match="no images in"):
        import_voc(tmp_path / "src", tmp_path / "src", tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        import_voc(tmp_path / "missing", tmp_path / "src", tmp_path / "out")


def test_scut_head_split_takes_every_fourth_block_of_twenty() -> None:
    def split_of(number: int) -> str:
        return scut_head_split(Path(f"PartA_{number:05d}.jpg"))

    assert [split_of(n) for n in (0, 59, 60, 79, 80, 139, 140)] == [
        "train",
        "train",
        "test",
        "test",
        "train",
        "train",
        "test",
    ]
    tests = sum(split_of(n) == "test" for n in range(2000))
    assert tests == 500
    with pytest.raises(ValueError, match="not named like SCUT-HEAD"):
        scut_head_split(Path("IMG_1.jpg"))


def test_import_scut_head_writes_both_parts_split_by_blocks(tmp_path: Path) -> None:
    source = tmp_path / "scut"
    numbers = {"A": [0, 1, 60, 61], "B": [5, 65]}
    for part, part_numbers in numbers.items():
        for number in part_numbers:
            name = f"Part{part}_{number:05d}"
            write_image(source / "JPEGImages" / f"{name}.jpg")
            write_voc(source / "Annotations" / f"{name}.xml", [("head", 1 + number % 30, 1, 10 + number % 30, 10)])
    summaries = import_scut_head(source, tmp_path / "out")
    assert [(Path(s.folder).parent.name, Path(s.folder).name, s.images) for s in summaries] == [
        ("scut-head-a", "train", 2),
        ("scut-head-a", "test", 2),
        ("scut-head-b", "train", 1),
        ("scut-head-b", "test", 1),
    ]
    test_a = load_annotated(tmp_path / "out" / "scut-head-a", "test")
    assert [s.image_path.name for s in test_a] == ["PartA_00060.jpg", "PartA_00061.jpg"]
    np.testing.assert_allclose(test_a[0].points, [[5.0, 5.0]])


def test_import_beijing_brt_keeps_its_own_split(tmp_path: Path) -> None:
    source = tmp_path / "brt"
    for split, stems in {"train": ["1-20160620091226", "2-1"], "test": ["1-20160620091221"]}.items():
        for index, stem in enumerate(stems):
            write_image(source / split / "frame" / f"{stem}.jpg", width=36, height=64)
            write_mat(source / split / "ground_truth" / f"{stem}.mat", [[10.0 + index, 20.0], [30.0, 60.0]])
    summaries = import_beijing_brt(source, tmp_path / "out")
    assert [(s.images, s.heads, s.dropped) for s in summaries] == [(2, 4, 0), (1, 2, 0)]
    train = load_annotated(tmp_path / "out" / "beijing-brt", "train")
    assert [s.image_path.stem for s in train] == ["1-20160620091226", "2-1"]
    np.testing.assert_allclose(train[1].points, [[11.0, 20.0], [30.0, 60.0]])


def write_mall_gt(path: Path, frames: list[list[list[float]]]) -> None:
    """A `mall_gt.mat` as Mall ships it: a 1 x N cell array `frame` of structs with `.loc` (N x 2), and `count`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cells = np.empty((1, len(frames)), dtype=object)
    for index, points in enumerate(frames):
        cells[0, index] = {"loc": np.asarray(points, dtype=np.float64).reshape(-1, 2)}
    scipy.io.savemat(path, {"frame": cells, "count": np.asarray([[len(p)] for p in frames], dtype=np.float64)})


def test_mat_frame_points_read_one_cell_per_frame_in_order(tmp_path: Path) -> None:
    write_mall_gt(tmp_path / "gt.mat", [[[1.5, 2.0], [3.0, 4.0]], [], [[5.0, 6.0]]])
    frames = mat_frame_points(tmp_path / "gt.mat")
    assert [f.shape for f in frames] == [(2, 2), (0, 2), (1, 2)]
    np.testing.assert_allclose(frames[0], [[1.5, 2.0], [3.0, 4.0]])
    with pytest.raises(AnnotationFormatError, match=r"gt\.mat: frame\{1\} has no field 'xy'"):
        mat_frame_points(tmp_path / "gt.mat", field="xy")
    with pytest.raises(AnnotationFormatError, match=r"gt\.mat: no variable 'frames' \(found: frame, count\)"):
        mat_frame_points(tmp_path / "gt.mat", cells="frames")


def test_import_mall_writes_every_frame_under_its_own_name(tmp_path: Path) -> None:
    source = tmp_path / "mall_dataset"
    for number in (1, 2, 3):
        write_image(source / "frames" / f"seq_{number:06d}.jpg")
    # Frame 2's second head lies outside the 64x48 image: dropped and reported.
    write_mall_gt(source / "mall_gt.mat", [[[10.0, 20.0]], [[30.5, 40.0], [70.0, 5.0]], []])
    summary = import_mall(source, tmp_path / "out" / "mall")
    assert (summary.images, summary.heads, summary.dropped) == (3, 2, 1)
    samples = point_folder(tmp_path / "out" / "mall")
    assert [s.image_path.name for s in samples] == ["seq_000001.jpg", "seq_000002.jpg", "seq_000003.jpg"]
    np.testing.assert_allclose(samples[1].points, [[30.5, 40.0]])
    assert samples[2].count == 0
    assert not region_of_interest_path(tmp_path / "out" / "mall").exists()  # the source has none
    # With Mall's region of interest, it is written beside the folder (not in it, where it would be a frame).
    mask = np.zeros((48, 64), dtype=np.uint8)
    mask[10:, :50] = 1
    scipy.io.savemat(source / "perspective_roi.mat", {"roi": {"mask": mask}})
    import_mall(source, tmp_path / "out" / "mall")
    written = np.asarray(Image.open(tmp_path / "out" / "mall-roi.png"))
    np.testing.assert_array_equal(written > 127, mask > 0)
    assert len(point_folder(tmp_path / "out" / "mall")) == 3
    (source / "frames" / "seq_000003.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"1 frames of mall_gt\.mat are not in .*: seq_000003\.jpg"):
        import_mall(source, tmp_path / "out2")


def test_cli_import_prints_a_summary_per_folder_and_refuses_bad_files(tmp_path: Path, capsys) -> None:
    write_image(tmp_path / "src" / "f1.jpg")
    write_mat(tmp_path / "src" / "f1.mat", [[1.0, 2.0]], variable="annPoints")
    assert main(["import", "mat", str(tmp_path / "src"), str(tmp_path / "out"), "--variable", "annPoints"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary == {"folder": str(tmp_path / "out"), "images": 1, "heads": 1, "dropped": 0}
    assert main(["import", "mat", str(tmp_path / "src"), str(tmp_path / "out2")]) == 2
    assert "no variable 'loc'" in capsys.readouterr().err
