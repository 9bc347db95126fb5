"""The documentation reads as a reference: no diary wording, no paths of the development
machine, every image referenced, the citation file in step with the package."""
import glob
import os.path as osp
import re

import yaml

from lbc_mmdet.version import __version__

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DOCS = sorted(glob.glob(osp.join(ROOT, 'docs', '**', '*.md'), recursive=True)) + [
    osp.join(ROOT, 'README.md'), osp.join(ROOT, 'CHANGELOG.md')]
#: wording that dates a text to a development round, or paths only the developers have
DIARY = re.compile(r'this round|previous round|the issue|/tmp/|shared/', re.IGNORECASE)


def test_docs_read_as_a_reference():
    found = [f'{osp.relpath(path, ROOT)}:{i}: {line.strip()[:80]}'
             for path in DOCS for i, line in enumerate(open(path), 1) if DIARY.search(line)]
    assert not found, '\n'.join(found)


def test_every_image_of_docs_is_referenced():
    text = ''.join(open(path).read() for path in DOCS)
    text += open(osp.join(ROOT, 'README.md')).read()
    for image in glob.glob(osp.join(ROOT, 'docs', '**', '*.png'), recursive=True):
        assert osp.basename(image) in text, osp.relpath(image, ROOT)


def test_citation_file():
    cff = yaml.safe_load(open(osp.join(ROOT, 'CITATION.cff')))
    assert cff['cff-version'] == '1.2.0' and cff['title'] == 'lbc_mmdet'
    assert cff['version'] == __version__
    assert cff['authors'] == [dict(name='lbc_mmdet contributors')]
    assert cff['license'] == 'Apache-2.0'
    assert any('Learning Best Combination' in ref['title'] for ref in cff['references'])


def test_every_method_section_has_its_bibtex():
    from lbc_mmdet.layers import display_name, method_names
    text = open(osp.join(ROOT, 'docs', 'methods.md')).read()
    sections = re.split(r'^## ', text, flags=re.MULTILINE)
    assert {'lbc', 'srste', 'asp', 'bame', 'bimask', 'maxq'} <= set(method_names())
    for key in method_names():
        name = display_name(key)
        section = next(s for s in sections if s.startswith(name))
        assert '```bibtex' in section and re.search(r'@\w+\{\w+,', section), name
