"""Constants shared by the tests."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "data" / "territories" / "cpts_seeds.csv"

# Seed 002 (communiqué CPAM de la Loire / ARS ARA): the communes of the CPTS Vallée du Gier,
# in the order and spelling of the press release (typographic apostrophe in L’Horme).
VALLEE_DU_GIER = (
    "Le Bessat, Cellieu, Chagnon, Châteauneuf, Dargoire, Doizieux, Farnay, La Grand-Croix, "
    "L’Horme, Lorette, Pavezin, Rive-de-Gier, Saint-Chamond, Sainte-Croix-en-Jarez, Genilac, "
    "Saint-Joseph, Saint-Martin-la-Plaine, Saint-Paul-en-Jarez, Saint-Romain-en-Jarez, Tartaras, "
    "La Terrasse-sur-Dorlay, Valfleury, La Valla-en-Gier, Longes, Trèves, Marcenod, "
    "Saint-Christo-en-Jarez"
).split(", ")


def workbook(sheets: dict[str, list[list[object]]], *, hidden: tuple[str, ...] = (),
             active: int = 0, merges: tuple[str, ...] = ()):
    """An openpyxl workbook of these sheets (rows as lists), some hidden, one active."""
    import openpyxl

    book = openpyxl.Workbook()
    book.remove(book.active)
    for title, rows in sheets.items():
        ws = book.create_sheet(title)
        for r in rows:
            ws.append(r)
        if title in hidden:
            ws.sheet_state = "hidden"
    for ref in merges:
        book.worksheets[active].merge_cells(ref)
    book.active = active
    return book


# ---------------------------------------------------------------------------------------------
# Workbooks written by hand: what openpyxl will not write (a merged range to the last cell, a
# dimension that lies, a zip part that decompresses to megabytes), in a few hundred bytes.
# ---------------------------------------------------------------------------------------------
_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG = "http://schemas.openxmlformats.org/package/2006/relationships"


def _column_letter(n: int) -> str:
    letters = ""
    while n:
        n, r = divmod(n - 1, 26)
        letters = chr(65 + r) + letters
    return letters


def _cell(ref: str, value: object) -> str:
    from xml.sax.saxutils import escape

    if isinstance(value, tuple) and value[0] == "formula":  # ("formula", text[, cached])
        cached = f"<v>{escape(str(value[2]))}</v>" if len(value) > 2 else ""
        return f'<c r="{ref}"><f>{escape(value[1])}</f>{cached}</c>'
    if isinstance(value, int | float):
        return f'<c r="{ref}"><v>{value}</v></c>'
    return f'<c r="{ref}" t="inlineStr"><is><t>{escape(str(value))}</t></is></c>'


def sheet_xml(rows: dict[int, list[object]] | list[list[object]], *, cells=None, merges=(),
              dimension: str | None = None, padding: int = 0) -> str:
    """A worksheet part: ``rows`` (row number -> values from column A), extra ``cells``
    (``{"ZZ50000": "x"}``), merged ranges, a ``dimension`` element, ``padding`` bytes of blanks
    (which compress to almost nothing)."""
    if isinstance(rows, list):
        rows = dict(enumerate(rows, start=1))
    by_row: dict[int, list[str]] = {}
    for r, values in rows.items():
        by_row[r] = [_cell(f"{_column_letter(c)}{r}", v)
                     for c, v in enumerate(values, start=1) if v is not None]
    for ref, value in (cells or {}).items():
        r = int("".join(ch for ch in ref if ch.isdigit()))
        by_row.setdefault(r, []).append(_cell(ref, value))
    data = "".join(f'<row r="{r}">{"".join(cs)}</row>' for r, cs in sorted(by_row.items()))
    dim = f'<dimension ref="{dimension}"/>' if dimension else ""
    merged = (f'<mergeCells count="{len(merges)}">'
              + "".join(f'<mergeCell ref="{m}"/>' for m in merges) + "</mergeCells>"
              if merges else "")
    return (f'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="{_MAIN}">{dim}'
            f'<sheetData>{data}</sheetData>{merged}{" " * padding}</worksheet>')


def write_xlsx(path: Path, sheets: list[tuple[str, str, str]], active: int = 0) -> Path:
    """Write a workbook of ``(name, state, sheet_xml)`` sheets; ``active`` is the active tab."""
    import zipfile

    overrides = "".join(
        f'<Override PartName="/xl/worksheets/sheet{i}.xml" ContentType="application/'
        'vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
        for i in range(1, len(sheets) + 1))
    types = ('<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats'
             '.org/package/2006/content-types"><Default Extension="rels" ContentType="application/'
             'vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType='
             '"application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/'
             'vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
             f"{overrides}</Types>")
    rels = (f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{_PKG}"><Relationship '
            f'Id="rId1" Type="{_REL}/officeDocument" Target="xl/workbook.xml"/></Relationships>')
    entries = "".join(
        f'<sheet name="{name}" sheetId="{i}" state="{state}" r:id="rId{i}"/>'
        for i, (name, state, _) in enumerate(sheets, start=1))
    workbook = (f'<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="{_MAIN}" xmlns:r="{_REL}">'
                f'<bookViews><workbookView activeTab="{active}"/></bookViews><sheets>{entries}'
                "</sheets></workbook>")
    book_rels = (f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{_PKG}">'
                 + "".join(f'<Relationship Id="rId{i}" Type="{_REL}/worksheet" '
                           f'Target="worksheets/sheet{i}.xml"/>'
                           for i in range(1, len(sheets) + 1))
                 + "</Relationships>")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("[Content_Types].xml", types)
        zf.writestr("_rels/.rels", rels)
        zf.writestr("xl/workbook.xml", workbook)
        zf.writestr("xl/_rels/workbook.xml.rels", book_rels)
        for i, (_, _, xml) in enumerate(sheets, start=1):
            zf.writestr(f"xl/worksheets/sheet{i}.xml", xml)
    return path
