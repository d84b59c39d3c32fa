# QRES in a container: the library, the `qres` command and the bundled recordings (package data).
#   docker build -t qres .
#   docker run --rm qres demo
#   docker run --rm -v "$PWD:/work" qres compress /work/data.csv -o /work/data.qres
FROM python:3.11-slim
WORKDIR /opt/qres
COPY pyproject.toml README.md ./
COPY src ./src
COPY bench ./bench
RUN pip install --no-cache-dir '.[bench]' \
 && python -c "import qres, numpy; qres.decompress(qres.compress(numpy.arange(1000)))"  # compile and cache the kernels
ENTRYPOINT ["qres"]
CMD ["--help"]
