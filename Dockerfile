# katib-local: one image for `katib server`, `katib operator` and the metrics-collector
# sidecar (`python -m trial_runner --sidecar`) that trial pods run beside any training image.
#
#   docker build -t REGISTRY/katib-local:0.1.0 . && docker push REGISTRY/katib-local:0.1.0
#
# then set that image in crds/deploy/ (kustomize `images:`) and pass it to the operator and
# the server as --sidecar-image. No image could be built where this project is developed
# (no container engine there); the Dockerfile is checked by reading, not by a build.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY katib ./katib
COPY suggestion ./suggestion
COPY trial_runner ./trial_runner
RUN pip wheel --no-cache-dir --wheel-dir /wheels '.[k8s,postgres,tfevent]'

FROM python:3.11-slim
RUN useradd --uid 1000 --create-home katib
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER 1000
ENV KATIB_HOME=/home/katib/.katib PYTHONUNBUFFERED=1
EXPOSE 8080
ENTRYPOINT ["katib"]
CMD ["--help"]
