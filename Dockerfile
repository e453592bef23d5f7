# poolboard node image: `docker build -t poolboard:local .`, then see docs/docker.md.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
COPY patches ./patches
RUN npm ci
COPY tsconfig.json tsconfig.build.json ./
COPY protocol ./protocol
COPY board ./board
COPY storage ./storage
COPY daemon ./daemon
COPY bench ./bench
RUN npm run build && npm prune --omit=dev --ignore-scripts

FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production POOLBOARD_DATADIR=/data
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
RUN ln -s /app/dist/daemon/cli.js /usr/local/bin/poolboard && chmod +x /app/dist/daemon/cli.js
VOLUME /data
EXPOSE 7700
# The admin API listens on the container's loopback only: use `docker exec CONTAINER poolboard status`.
# Healthy while the node answers on its admin API (`poolboard status` exits 0); compose.yaml points
# each node's check at its own data directory.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["node", "/app/dist/daemon/cli.js", "status", "--json"]
ENTRYPOINT ["node", "/app/dist/daemon/cli.js"]
CMD ["start"]
