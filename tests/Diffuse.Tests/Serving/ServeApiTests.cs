using System.Net;
using System.Text;
using System.Text.Json;
using Diffuse.Cli.Serving;

namespace Diffuse.Tests.Serving;

/// <summary>The API of diffuse serve: listing, sampling with the bytes of diffuse sample, and every refusal as one JSON error.</summary>
[Collection("Serving")]
public class ServeApiTests(ServerFixture fixture)
{
    private ServerInstance Server => fixture.Server;

    [Fact]
    public async Task ListsModelsWithKindShapeClassesFormulationAndDefaultSampler()
    {
        using var json = JsonDocument.Parse(await Server.Client.GetStringAsync("/v1/models"));
        var models = json.RootElement.GetProperty("models").EnumerateArray().ToDictionary(m => m.GetProperty("name").GetString()!);
        var image = models["image"];
        Assert.Equal("image", image.GetProperty("kind").GetString());
        Assert.Equal(new[] { 1, 8, 8 }, image.GetProperty("shape").EnumerateArray().Select(e => e.GetInt32()));
        Assert.Equal(2, image.GetProperty("classes").GetArrayLength());
        Assert.Equal("ddpm", image.GetProperty("formulation").GetString());
        Assert.Equal("dpm++2m", image.GetProperty("defaultSampler").GetProperty("sampler").GetString());
        var table = models["table"];
        Assert.Equal("table", table.GetProperty("kind").GetString());
        Assert.Equal(0, table.GetProperty("classes").GetArrayLength());
        Assert.Equal("ddpm", table.GetProperty("defaultSampler").GetProperty("sampler").GetString());
        using var one = JsonDocument.Parse(await Server.Client.GetStringAsync("/v1/models/table/schedule"));
        Assert.Equal(50, one.RootElement.GetProperty("alphaBar").GetArrayLength());
        using var openapi = JsonDocument.Parse(await Server.Client.GetStringAsync("/openapi.json"));
        Assert.StartsWith("3.", openapi.RootElement.GetProperty("openapi").GetString());
        Assert.True(openapi.RootElement.GetProperty("paths").TryGetProperty("/v1/models/{name}/samples", out _));
        // The description's sampler and spacing names are the library's tables.
        var properties = openapi.RootElement.GetProperty("components").GetProperty("schemas").GetProperty("SampleRequest").GetProperty("properties");
        Assert.Equal(Diffuse.Sampling.SamplerNames.All, properties.GetProperty("sampler").GetProperty("enum").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal(Diffuse.Sampling.SamplerSpacings.All, properties.GetProperty("spacing").GetProperty("enum").EnumerateArray().Select(e => e.GetString()));
    }

    [Fact]
    public async Task ImagesAreTheBytesThatDiffuseSampleWrites()
    {
        string grid = Path.Combine(fixture.Root, "cli-grid.png");
        var cli = Diffuse.Tests.Cli.Cli.Run("sample", "--model", fixture.ImageModel, "--out", grid, "--count", "6", "--steps", "5", "--sampler", "dpm++2m", "--seed", "3", "--guidance", "2");
        Assert.True(cli.Code == 0, cli.Err);
        var served = await Server.SampleBytes("image", new { count = 6, steps = 5, sampler = "dpm++2m", seed = 3, guidance = 2 });
        Assert.Equal(File.ReadAllBytes(grid), served);

        // One class, a stochastic sampler (served alone), one PNG per image named as diffuse sample names them.
        string folder = Path.Combine(fixture.Root, "cli-pngs");
        cli = Diffuse.Tests.Cli.Cli.Run("sample", "--model", fixture.ImageModel, "--out", folder, "--count", "3", "--class", "1", "--sampler", "ddpm", "--steps", "4", "--seed", "5");
        Assert.True(cli.Code == 0, cli.Err);
        using var json = JsonDocument.Parse(await Server.SampleBytes("image", new { count = 3, @class = "1", sampler = "ddpm", steps = 4, seed = 5, format = "png" }));
        var images = json.RootElement.GetProperty("images").EnumerateArray().ToArray();
        Assert.Equal(3, images.Length);
        foreach (var image in images)
            Assert.Equal(File.ReadAllBytes(Path.Combine(folder, image.GetProperty("name").GetString()!)), Convert.FromBase64String(image.GetProperty("png").GetString()!));
    }

    [Fact]
    public async Task TablesAreTheCsvAndScatterThatDiffuseSampleWrites()
    {
        foreach (var (format, file) in new[] { ("csv", "cli.csv"), ("scatter", "cli-scatter.png") })
        {
            string path = Path.Combine(fixture.Root, file);
            var cli = Diffuse.Tests.Cli.Cli.Run("sample", "--model", fixture.TableModel, "--out", path, "--count", "300", "--seed", "9", "--steps", "20", "--sampler", "ddim");
            Assert.True(cli.Code == 0, cli.Err);
            Assert.Equal(File.ReadAllBytes(path), await Server.SampleBytes("table", new { count = 300, seed = 9, steps = 20, sampler = "ddim", format }));
        }
        using var json = JsonDocument.Parse(await Server.SampleBytes("table", new { count = 10, format = "json", sampler = "euler", steps = 10 }));
        Assert.Equal(10, json.RootElement.GetProperty("rows").GetArrayLength());
        var tensors = await Server.SampleBytes("table", new { count = 10, format = "safetensors", sampler = "euler", steps = 10 });
        string saved = Path.Combine(fixture.Root, "t.safetensors");
        File.WriteAllBytes(saved, tensors);
        using var loaded = Diffuse.Checkpoints.Safetensors.Load(saved)["samples"];
        Assert.Equal(new long[] { 10, 2 }, loaded.shape);
    }

    [Fact]
    public async Task EveryBadInputIsOneJsonErrorWithA4xxStatus()
    {
        var s = Server;
        await ServerInstance.AssertError(await s.Sample("nope", new { }), 404, "unknown_model", "'nope'", "image", "table");
        await ServerInstance.AssertError(await s.Sample("..%2F..%2Fetc", new { }), 404, "unknown_model");
        await ServerInstance.AssertError(await s.Sample("image", new { @class = 7 }), 400, "invalid_request", "'class' 7", "0 … 1");
        await ServerInstance.AssertError(await s.Sample("image", new { @class = -1 }), 400, "invalid_request", "'class'");
        await ServerInstance.AssertError(await s.Sample("image", new { @class = "unicorn" }), 400, "invalid_request", "'class' unicorn");
        await ServerInstance.AssertError(await s.Sample("image", new { sampler = "magic" }), 400, "invalid_request", "'sampler'", "dpm++2m", "magic");
        await ServerInstance.AssertError(await s.Sample("image", new { count = -3 }), 400, "invalid_request", "'count'", "-3");
        await ServerInstance.AssertError(await s.Sample("image", new { count = 0 }), 400, "invalid_request", "'count'");
        await ServerInstance.AssertError(await s.Sample("image", new { count = 65 }), 400, "invalid_request", "limit of 64");
        await ServerInstance.AssertError(await s.Sample("image", new { steps = 50_000, sampler = "euler", sigmas = "karras" }), 400, "invalid_request", "limit of 20000");
        await ServerInstance.AssertError(await s.Sample("image", new { steps = -2, sampler = "ddim" }), 400, "invalid_request", "'steps'");
        await ServerInstance.AssertError(await s.Sample("image", new { guidance = -1 }), 400, "invalid_request", "guidance");
        await ServerInstance.AssertError(await s.Sample("image", new { format = "gif" }), 400, "invalid_request", "'format'", "grid");
        await ServerInstance.AssertError(await s.Sample("image", new { scale = 40 }), 400, "invalid_request", "'scale'");
        await ServerInstance.AssertError(await s.Sample("image", new { preview = true }), 400, "invalid_request", "'stream'");
        await ServerInstance.AssertError(await s.Sample("table", new { @class = 1 }), 400, "invalid_request", "'class'", "table");
        await ServerInstance.AssertError(await s.Sample("table", new { format = "grid" }), 400, "invalid_request", "csv");
        await ServerInstance.AssertError(await s.Sample("image", "{\"count\": 3,"), 400, "invalid_request", "not a valid sample request");
        await ServerInstance.AssertError(await s.Sample("image", "[1, 2]"), 400, "invalid_request", "not a valid sample request");
        await ServerInstance.AssertError(await s.Sample("image", "{\"count\": \"3\"}"), 400, "invalid_request", "not a valid sample request");
        await ServerInstance.AssertError(await s.Sample("image", "{\"out\": \"/etc/passwd\"}"), 400, "invalid_request", "out");
        await ServerInstance.AssertError(await s.Client.PostAsync("/v1/models/image/samples", new StringContent("count=3", Encoding.UTF8, "text/plain")), 415, "unsupported_media_type");
        await ServerInstance.AssertError(await s.Sample("image", "{\"sampler\": \"" + new string('x', 100_000) + "\"}"), 413, "body_too_large");
        await ServerInstance.AssertError(await s.Client.GetAsync("/v1/nothing-here"), 404, "not_found");
        await ServerInstance.AssertError(await s.Client.GetAsync("/v1/models/table/examples"), 404, "no_examples", "own samples");
        await ServerInstance.AssertError(await s.Client.GetAsync("/v1/models/image/examples"), 404, "no_examples");
        // Nothing in a request is a path: a model is found by name among those loaded, never on disk.
        await ServerInstance.AssertError(await s.Sample(Uri.EscapeDataString(fixture.ImageModel), new { }), 404, "unknown_model");
        // The API still answers after all of that.
        Assert.Equal(HttpStatusCode.OK, (await s.Sample("image", new { count = 2, steps = 2, sampler = "euler" })).StatusCode);
    }

    [Fact]
    public async Task AFullQueueIsRefusedWith429AndRetryAfter()
    {
        await using var server = await ServerInstance.StartAsync(new ServeOptions(Port: 0, QueueLimit: 1, MaxEvaluations: 20_000, MaxBatch: 64), fixture.ImageModel);
        using var cancel = new CancellationTokenSource();
        // A long request fills the network's batch (20,000 steps of 64 images, as many as MaxBatch), a second waits for room, a third is refused.
        var running = await Streaming.Start(server, "image", new { count = 64, sampler = "euler", sigmas = "karras", steps = 20_000, stream = true }, cancel.Token);
        await running.NextEvent("progress");
        var waiting = server.Sample("image", new { count = 1, steps = 2, sampler = "euler" });
        var scheduler = server.Model("image").Scheduler;
        await Until(() => scheduler.Waiting == 1, describe: () => $"waiting {scheduler.Waiting}, busy {scheduler.Busy}, runs {scheduler.Counts}, second request {waiting.Status}");
        using var refused = await server.Sample("image", new { count = 1, steps = 2, sampler = "euler" });
        await ServerInstance.AssertError(refused, 429, "queue_full", "waiting");
        Assert.Equal("1", refused.Headers.GetValues("Retry-After").Single());
        cancel.Cancel();
        running.Dispose();
        using var served = await waiting;
        Assert.Equal(HttpStatusCode.OK, served.StatusCode);
    }

    [Fact]
    public async Task AnApiKeyIsCheckedAndANetworkAddressNeedsOneOrNoAuth()
    {
        const string key = "0123456789abcdef-secret";
        await using var server = await ServerInstance.StartAsync(new ServeOptions(Port: 0, ApiKey: key), fixture.TableModel);
        await ServerInstance.AssertError(await server.Client.GetAsync("/v1/models"), 401, "unauthorized", "X-Api-Key");
        using var wrong = new HttpRequestMessage(HttpMethod.Get, "/v1/models") { Headers = { { "X-Api-Key", key + "x" } } };
        await ServerInstance.AssertError(await server.Client.SendAsync(wrong), 401, "unauthorized");
        using var right = new HttpRequestMessage(HttpMethod.Get, "/v1/models") { Headers = { { "X-Api-Key", key } } };
        Assert.Equal(HttpStatusCode.OK, (await server.Client.SendAsync(right)).StatusCode);
        using var bearer = new HttpRequestMessage(HttpMethod.Get, "/v1/models") { Headers = { { "Authorization", "Bearer " + key } } };
        Assert.Equal(HttpStatusCode.OK, (await server.Client.SendAsync(bearer)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await server.Client.GetAsync("/healthz")).StatusCode);

        var error = Assert.Throws<DiffuseException>(() => new ServeOptions(Host: "0.0.0.0").Validate());
        Assert.Contains("--api-key", error.Message);
        Assert.Contains("--no-auth", error.Message);
        new ServeOptions(Host: "0.0.0.0", NoAuth: true).Validate();
        new ServeOptions(Host: "0.0.0.0", ApiKey: key).Validate();
        Diffuse.Tests.Cli.Cli.AssertUserError(Diffuse.Tests.Cli.Cli.Run("serve", "--model", fixture.TableModel, "--host", "0.0.0.0"), "--api-key", "--no-auth");
        Diffuse.Tests.Cli.Cli.AssertUserError(Diffuse.Tests.Cli.Cli.Run("serve", "--model", fixture.TableModel, "--api-key", "short"), "16 characters");
        Diffuse.Tests.Cli.Cli.AssertUserError(Diffuse.Tests.Cli.Cli.Run("serve"), "--model");
        Diffuse.Tests.Cli.Cli.AssertUserError(Diffuse.Tests.Cli.Cli.Run("serve", "--model", "no-such-model"), "no-such-model");
    }

    internal static async Task Until(Func<bool> condition, int timeoutMs = 30_000, Func<string>? describe = null)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.ElapsedMilliseconds > timeoutMs) throw new TimeoutException($"the condition did not become true in time; {describe?.Invoke()}");
            await Task.Delay(10);
        }
    }
}
