"""The property tasks against answers computed independently here, with ASE's EMT potential
wrapped as a model (an object offering ``calculator()``, what the tasks take a model through).

* ``eos``: V0 and B0 of fcc Cu against a Birch–Murnaghan fit of EMT energies on a lattice
  constant grid done here (0.1 % on V0, 1 % on B0);
* ``elastic``: C11, C12, C44 against second derivatives of the EMT energy density along
  strains (quadratic fits of E(ε)/V, 2 %); the bulk modulus against (C11 + 2 C12)/3;
* ``phonons``: frequencies at Γ and X against phonopy driven directly by EMT (1e-3 THz);
* bad input: a non-periodic structure and an unknown option stop with one clear message.
"""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk, molecule
from ase.calculators.emt import EMT
from ase.eos import EquationOfState

from mlffbench.errors import ConfigError
from mlffbench.tasks import elastic, eos, phonons
from mlffbench.tasks.base import TaskResult, read_results, run_task
from mlffbench.tasks.structures import GPA_PER_EV_A3


class EMTModel:
    """ASE's EMT as a model: the tasks use ``calculator()`` (and ``species`` where present)."""

    label = "emt"
    source = "ASE EMT"
    species = (29,)
    run_dir = None

    def calculator(self):
        return EMT()


@pytest.fixture(scope="module")
def reference_a() -> tuple[float, float, float]:
    """(a0, V0 per atom, B0 GPa) of EMT fcc Cu from ASE's own EOS fit on a grid of lattice constants."""
    volumes, energies = [], []
    for a in np.linspace(3.50, 3.70, 11):
        atoms = bulk("Cu", "fcc", a=a)
        atoms.calc = EMT()
        volumes.append(atoms.get_volume())
        energies.append(atoms.get_potential_energy())
    v0, _, b0 = EquationOfState(volumes, energies, eos="birchmurnaghan").fit()
    return float((4 * v0) ** (1 / 3)), float(v0), float(b0 * GPA_PER_EV_A3)


def _energy_density_curvature(a0: float, strain_of) -> float:
    """d²(E/V0)/dε² of EMT Cu at a0 along ``strain_of(ε)``, from a quadratic fit (GPa)."""
    base = bulk("Cu", "fcc", a=a0, cubic=True)
    v0 = base.get_volume()
    eps = np.linspace(-0.004, 0.004, 7)
    energies = []
    for e in eps:
        atoms = base.copy()
        atoms.set_cell(base.cell.array @ (np.eye(3) + strain_of(e)).T, scale_atoms=True)
        atoms.calc = EMT()
        energies.append(atoms.get_potential_energy())
    return float(2 * np.polyfit(eps, np.asarray(energies) / v0, 2)[0] * GPA_PER_EV_A3)


@pytest.mark.slow  # the first relaxation imports ASE's optimisers and matplotlib: 3-8 s on 2 cores
def test_eos_of_emt_copper(tmp_path, reference_a):
    _, v0, b0 = reference_a
    result = run_task(eos.SPEC, EMTModel(), {"structure": bulk("Cu", "fcc", a=3.6)}, out_dir=tmp_path)
    assert result.value("V0") == pytest.approx(v0, rel=1e-3)
    assert result.value("B0") == pytest.approx(b0, rel=1e-2)
    assert 3.0 < result.value("B0_prime") < 6.0
    assert result.figures["V0"].unit == "Å³/atom" and result.figures["B0"].unit == "GPa"
    assert (tmp_path / "result.json").is_file() and (tmp_path / "eos.png").is_file()
    assert result.data["relaxation"]["converged"]
    kept = TaskResult.from_dict(__import__("json").loads((tmp_path / "result.json").read_text()))
    assert kept.value("B0") == pytest.approx(result.value("B0"))


def test_elastic_constants_of_emt_copper(tmp_path, reference_a):
    a0 = reference_a[0]

    def uniaxial(e):
        return np.diag([e, 0.0, 0.0])

    def biaxial(e):  # ε1 = ε2 = e: energy density curvature 2 (C11 + C12)
        return np.diag([e, e, 0.0])

    def shear(e):  # engineering shear γ4 = e: curvature C44
        s = np.zeros((3, 3))
        s[1, 2] = s[2, 1] = e / 2
        return s

    c11 = _energy_density_curvature(a0, uniaxial)
    c12 = _energy_density_curvature(a0, biaxial) / 2 - c11
    c44 = _energy_density_curvature(a0, shear)
    result = run_task(elastic.SPEC, EMTModel(), {"structure": bulk("Cu", "fcc", a=a0, cubic=True)}, out_dir=tmp_path)
    assert result.value("C11") == pytest.approx(c11, rel=0.02)
    assert result.value("C12") == pytest.approx(c12, rel=0.02)
    assert result.value("C44") == pytest.approx(c44, rel=0.02)
    assert result.value("C22") == pytest.approx(result.value("C11"), rel=1e-3)  # cubic
    assert result.value("K_VRH") == pytest.approx((c11 + 2 * c12) / 3, rel=0.02)
    assert result.value("K_VRH") == pytest.approx(reference_a[2], rel=0.03)  # = B0 of the EOS
    assert result.value("born_stable") is True and result.value("min_eigenvalue") > 0
    assert (tmp_path / "elastic.png").is_file()


def test_phonons_of_emt_copper_against_phonopy_with_emt(tmp_path, reference_a):
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    a0 = reference_a[0]
    cell = bulk("Cu", "fcc", a=a0)
    result = run_task(
        phonons.SPEC, EMTModel(), {"structure": cell, "relax": False, "mesh": 4, "band_points": 20}, out_dir=tmp_path
    )
    # phonopy driven directly by EMT, written here from phonopy's API
    unit = PhonopyAtoms(symbols=["Cu"], cell=cell.cell.array, scaled_positions=cell.get_scaled_positions())
    ph = Phonopy(unit, supercell_matrix=np.diag([2, 2, 2]), primitive_matrix="P")
    ph.generate_displacements(distance=0.01)
    forces = []
    for sc in ph.supercells_with_displacements:
        from ase import Atoms

        atoms = Atoms(sc.symbols, cell=sc.cell, scaled_positions=sc.scaled_positions, pbc=True)
        atoms.calc = EMT()
        forces.append(atoms.get_forces())
    ph.forces = np.array(forces)
    ph.produce_force_constants()
    ph.run_qpoints([[0, 0, 0], [0.5, 0.0, 0.5]])
    gamma, x = ph.get_qpoints_dict()["frequencies"]
    special = result.data["special_points"]
    assert np.allclose(special["G"]["frequencies_THz"], gamma, atol=1e-3)
    assert np.allclose(special["X"]["q"], [0.5, 0.0, 0.5])
    assert np.allclose(special["X"]["frequencies_THz"], x, atol=1e-3)
    assert result.value("highest_frequency") == pytest.approx(x.max(), abs=0.05)  # X is the top of fcc bands
    assert result.value("imaginary_modes") is False
    assert abs(result.value("lowest_frequency")) < 0.05
    assert (tmp_path / "phonons.png").is_file()


def test_bad_input_is_one_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="not periodic along all three cell vectors"):
        run_task(eos.SPEC, EMTModel(), {"structure": molecule("H2O")}, out_dir=tmp_path)
    with pytest.raises(ConfigError, match="task 'eos' has no option 'nope'"):
        run_task(eos.SPEC, EMTModel(), {"nope": 1}, out_dir=tmp_path)
    with pytest.raises(ConfigError, match="elements the model does not know: Al"):
        run_task(elastic.SPEC, EMTModel(), {"structure": bulk("Al", "fcc", a=4.05)}, out_dir=tmp_path)
    with pytest.raises(ConfigError, match="structure file"):
        run_task(eos.SPEC, EMTModel(), {"structure": str(tmp_path / "missing.xyz")}, out_dir=tmp_path)
    assert read_results(tmp_path) == {}
