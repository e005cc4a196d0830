# airgap.renku — the two commands are `make demo` and `make test`; everything else is a step of those.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/build/collections
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
COLLECTION_LINK := build/collections/ansible_collections/airgap/renku
SANITY_ROOT ?= $(or $(TMPDIR),/tmp)/airgap-renku-sanity
SANITY_TREE := $(SANITY_ROOT)/ansible_collections/airgap/renku
PYTEST_WORKERS ?= 2
MOLECULE_WORKERS ?= 2

.PHONY: help deps lab-binaries lab-up lab-down lab-status lab-env demo test unit sanity lint ruff integration molecule bench collection-link

help:
	@echo "make demo   - install what is needed, start the lab, run site.yml against inventories/lab"
	@echo "make test   - unit tests, ruff, ansible-test sanity, ansible-lint, integration tests on the lab"
	@echo "make bench  - run benchmarks/ and print name: value lines"
	@echo "make molecule - every molecule scenario (extensions/molecule/) against the lab"
	@echo "make lab-up | lab-down | lab-status | lab-env"

deps: $(VENV)/.deps-ok collection-link
$(VENV)/.deps-ok: requirements.txt requirements-dev.txt lab/install-deps.sh
	bash lab/install-deps.sh all
	touch $@

# The collection is used in place: build/collections/ansible_collections/airgap/renku -> the repository.
collection-link:
	@mkdir -p $(dir $(COLLECTION_LINK))
	@[ -L $(COLLECTION_LINK) ] || ln -sfn ../../../.. $(COLLECTION_LINK)

lab-binaries:
	bash lab/build-binaries.sh

lab-up: deps lab-binaries
	$(PY) lab/lab.py up

lab-down:
	@[ -x $(PY) ] && $(PY) lab/lab.py down || true

lab-status:
	@$(PY) lab/lab.py status

lab-env:
	@$(PY) lab/lab.py env

demo: lab-up
	ansible-playbook -i inventories/lab site.yml
	ansible-playbook -i inventories/lab playbooks/check.yml

unit: deps
	$(PY) -m pytest -q tests/unit -p no:cacheprovider

ruff: deps
	ruff check plugins lab tests benchmarks extensions
	ruff format --check plugins lab tests benchmarks extensions

# ansible-test bootstraps pip in its sanity venvs from a host this machine cannot reach; give it a
# bootstrap that uses Python's bundled pip instead (lab/get_pip_offline.py).
ANSIBLE_TEST_PIP := $(shell $(PY) -c "import re,ansible_test._internal.python_requirements as m,inspect;print(re.search(r\"pip='([0-9.]+)'\",inspect.getsource(m)).group(1))" 2>/dev/null)
sanity: deps
	@mkdir -p $(HOME)/.ansible/test/cache
	@cp lab/get_pip_offline.py $(HOME)/.ansible/test/cache/get_pip_$(subst .,_,$(ANSIBLE_TEST_PIP)).py
	@rm -rf $(SANITY_ROOT) && mkdir -p $(SANITY_TREE)
	@git ls-files -co --exclude-standard | grep -vE '^(lab|benchmarks|\.ci)/' | \
		tar -cf - -T - | tar -xf - -C $(SANITY_TREE)
	cd $(SANITY_TREE) && ansible-test sanity --venv --python 3.11 --color no

lint: deps
	NO_COLOR=1 ansible-lint -q --profile production

# test_no_secrets runs site.yml and test_awx_jobs the stages' job templates over the lab's shared objects, so they
# run alone, after the others; so does molecule's site scenario.
integration: lab-up
	$(PY) -m pytest -q tests/integration -n $(PYTEST_WORKERS) --dist loadscope -p no:cacheprovider \
		--ignore tests/integration/test_no_secrets.py --ignore tests/integration/test_awx_jobs.py
	$(MAKE) molecule
	$(PY) -m pytest -q tests/integration/test_no_secrets.py -p no:cacheprovider
	$(PY) -m pytest -q tests/integration/test_awx_jobs.py -p no:cacheprovider

# every scenario of extensions/molecule/ (destroy, syntax, prepare, check between two readings of the lab, converge,
# idempotence, verify, cleanup): the roles' side by side, then the whole site alone
molecule: lab-up
	molecule test --all --exclude site --workers $(MOLECULE_WORKERS) --no-command-borders
	molecule test --scenario-name site --no-command-borders

test: deps
	$(MAKE) unit ruff sanity lint integration

bench: lab-up
	@for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done
