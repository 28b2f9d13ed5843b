"""PDFs and e-books through pymupdf: page provenance, encryption, image-only pages, damage."""
import pytest

from comet_cli.errors import InputError
from comet_cli.readers import count_estimate, iter_pieces, prefix_sha256, read_source, scan

pymupdf = pytest.importorskip("pymupdf")


def source_for(path):
    [src] = scan(str(path))
    return src


@pytest.fixture
def pdfs(shared_data):
    return shared_data / "pdfs"


def test_book_pages_carry_their_page_number(pdfs):
    src = source_for(pdfs / "long" / "thinkpython2.pdf")
    assert src.kind == "pdf"
    warnings = []
    pieces = list(read_source(src, warn=warnings.append))
    assert pieces[0].text.startswith("Think Python\nHow to Think Like a Computer Scientist")
    assert pieces[0].page == 1 and pieces[0].end == 1
    copyright = [p for p in pieces if "Copyright © 2015 Allen Downey." in p.text]
    assert [p.page for p in copyright] == [4]
    # Page 2 is a blank verso (no images): skipped without a warning.
    assert 2 not in {p.page for p in pieces}
    assert [p.page for p in pieces] == sorted(p.page for p in pieces)
    assert pieces[-1].page == 264 and pieces[-1].end == 264
    assert warnings == []
    assert all(p.line_start is None and p.line_end is None for p in pieces)


def test_long_pages_are_split_and_resume_by_page(pdfs):
    src = source_for(pdfs / "long" / "thinkpython2.pdf")
    pieces = list(read_source(src, start=20, max_chars=500))
    assert pieces[0].page == 21 and all(len(p.text) <= 500 for p in pieces)
    page_21 = [p for p in pieces if p.page == 21]
    doc = pymupdf.open(src.abspath)
    assert "".join(p.text for p in page_21) == doc[20].get_text()
    # Inside a page the cursor stays on it; after its last piece it moves to the next page.
    assert [p.end for p in page_21] == [20] * (len(page_21) - 1) + [21]
    last_of_page = [i for i, p in enumerate(pieces) if p.end == p.page]
    for i in last_of_page[:5]:
        resumed = list(read_source(src, start=pieces[i].end, max_chars=500))
        assert resumed == pieces[i + 1 :]


def test_encrypted_pdf_needs_the_right_password(pdfs):
    path = pdfs / "short" / "libreoffice-writer-password.pdf"
    src = source_for(path)
    with pytest.raises(InputError) as e:
        list(read_source(src))
    assert str(e.value) == f"{path}: encrypted PDF; pass --password"
    with pytest.raises(InputError, match="wrong password"):
        list(read_source(src, password="guess"))
    [piece] = read_source(src, password="openpassword")
    assert piece.text.startswith("Lorem ipsum dolor sit amet") and piece.page == 1
    assert count_estimate(src) == (None, 1)
    assert count_estimate(src, password="openpassword")[1] == 1


def image_and_text_pdf(pdfs, tmp_path, layout):
    """A PDF whose pages, in order, are text ("T") or image-only ("I") pages of real files."""
    text = pymupdf.open(pdfs / "short" / "minimal-document.pdf")
    images = pymupdf.open(pdfs / "short" / "imagemagick-images.pdf")
    out = pymupdf.open()
    for kind in layout:
        out.insert_pdf(text if kind == "T" else images, from_page=0, to_page=0)
    path = tmp_path / "mixed.pdf"
    out.save(path)
    return path


def test_image_only_pages_are_named_in_one_warning(pdfs, tmp_path):
    path = image_and_text_pdf(pdfs, tmp_path, "TIIITI")
    warnings = []
    pieces = list(read_source(source_for(path), warn=warnings.append))
    assert [p.page for p in pieces] == [1, 5]
    assert warnings == [f"{path}: pages 2-4, 6 have no text layer (image-only); skipped"]


def test_pdf_with_no_text_at_all_is_an_error(pdfs):
    path = pdfs / "short" / "imagemagick-images.pdf"
    with pytest.raises(InputError, match=r"imagemagick-images\.pdf: no text layer on any of its 6 page"):
        list(read_source(source_for(path)))


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_damaged_pdf_is_an_error_naming_the_file(pdfs, tmp_path, capfd, damage):
    data = (pdfs / "short" / "pdflatex-4-pages.pdf").read_bytes()
    path = tmp_path / "broken.pdf"
    path.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"%PDF-1.5\n" + b"\x07" * 4000)
    with pytest.raises(InputError) as e:
        list(read_source(source_for(path)))
    assert str(e.value).startswith(f"{path}: cannot open PDF: ")
    # MuPDF's own complaints go into the error, not to the terminal.
    assert "MuPDF" not in capfd.readouterr().err


def test_folder_of_pdfs_skips_the_unreadable_with_warnings(pdfs):
    warnings = []
    pieces = list(iter_pieces(str(pdfs / "short"), include=["*.pdf"], warn=warnings.append))
    assert {p.path for p in pieces} >= {"habibi.pdf", "multicolumn.pdf", "pdflatex-forms.pdf"}
    assert warnings == [
        "imagemagick-images.pdf: no text layer on any of its 6 page(s) (scanned or image-only?); "
        "run OCR on it first, e.g. `ocrmypdf IN.pdf OUT.pdf` (skipped)",
        "libreoffice-writer-password.pdf: encrypted PDF; pass --password (skipped)",
    ]
    arabic = [p for p in pieces if p.path == "habibi.pdf"]
    assert "حَبيبي" in arabic[0].text


def test_prefix_hash_and_estimate(pdfs):
    src = source_for(pdfs / "long" / "thinkpython2.pdf")
    assert prefix_sha256(src, 3) == prefix_sha256(src, 3)
    assert prefix_sha256(src, 3) != prefix_sha256(src, 4)
    chars, pages = count_estimate(src)
    assert pages == 264
    # 83k words by the README: some 450k characters; a sample of 8 pages is within a factor 2.
    assert 225_000 < chars < 900_000


def test_ebook_formats_are_read_as_books(tmp_path):
    path = tmp_path / "tale.fb2"
    path.write_text(
        '<?xml version="1.0" encoding="utf-8"?>'
        '<FictionBook xmlns="http://www.gribuser.ru/xml/fictionbook/2.0"><description>'
        "<title-info><book-title>Tale</book-title></title-info></description><body><section>"
        "<title><p>Chapter One</p></title><p>Call me Ishmael.</p></section></body></FictionBook>"
    )
    src = source_for(path)
    assert src.kind == "book"
    [piece] = read_source(src)
    assert piece.text == "Chapter One\nCall me Ishmael.\n" and piece.page == 1
