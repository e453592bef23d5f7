# poolboard node image: `docker build -t poolboard .`, then see docs/docker.md.
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
ENTRYPOINT ["node", "/app/dist/daemon/cli.js"]
CMD ["start"]
