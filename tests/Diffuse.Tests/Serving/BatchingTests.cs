using System.Diagnostics;
using System.Net;
using System.Text.Json;
using Diffuse.Cli.Serving;
using Diffuse.Data.Images;
using SkiaSharp;

namespace Diffuse.Tests.Serving;

/// <summary>Dynamic batching, progress events, client disconnects and shutdown.</summary>
[Collection("Serving")]
public class BatchingTests(ServerFixture fixture)
{
    private ServerInstance Server => fixture.Server;

    /// <summary>Requests of one setting with different seeds, classes and counts.</summary>
    private static object[] Requests(string format, string sampler = "dpm++2m") => Enumerable.Range(0, 8).Select(i => (object)new
    {
        count = 1 + i % 3, seed = (ulong)(100 + i), @class = i % 2, sampler, steps = 12, format,
    }).ToArray();

    /// <summary>
    /// Deterministic and stochastic samplers alike: a batch gives each request's rows the noise of its own seed, so a
    /// request run with others equals its run alone.
    /// </summary>
    [Theory]
    [InlineData("dpm++2m")]
    [InlineData("euler-ancestral")]
    [InlineData("ddpm")]
    public async Task ConcurrentRequestsShareABatchAndGetTheirUnbatchedResults(string sampler)
    {
        var (runsBefore, jobsBefore) = Server.Model("image").Scheduler.Counts;
        await TogetherEqualsAlone(Requests("safetensors", sampler), sampler);
        var (runs, jobs) = Server.Model("image").Scheduler.Counts;
        Assert.Equal(16, jobs - jobsBefore);   // 8 alone, 8 together
        Assert.True(runs - runsBefore < 16, $"8 concurrent requests took {runs - runsBefore - 8} runs: no batching");
    }

    /// <summary>
    /// Runs <paramref name="requests"/> one at a time, then all at once: they share network evaluations, and each
    /// result equals its run alone up to float rounding of another batch size (the same noise rows, the same network).
    /// </summary>
    private async Task TogetherEqualsAlone(object[] requests, string label)
    {
        var alone = new List<byte[]>();
        foreach (var request in requests) alone.Add(await Server.SampleBytes("image", request));
        var together = await Concurrently(Server, "image", requests);
        Assert.Contains(together, r => r.Batch > r.Count);
        for (int i = 0; i < alone.Count; i++)
        {
            using var a = Load(alone[i]);
            using var b = Load(together[i].Bytes);
            Assert.True(a.allclose(b, rtol: 0, atol: 1e-5), $"{label}, request {i}: largest difference {(a - b).abs().max().item<float>()}");
        }
    }

    /// <summary>
    /// Requests of different samplers, step counts, spacings, classes and guidance share network evaluations (the
    /// network takes a noise level and a class per row), and each still gets its result alone.
    /// </summary>
    [Fact]
    public async Task RequestsOfDifferentSettingsShareTheNetwork()
    {
        object[] requests =
        {
            new { count = 2, seed = 1UL, @class = 0, sampler = "dpm++2m", steps = 12, format = "safetensors" },
            new { count = 1, seed = 2UL, @class = 1, sampler = "euler-ancestral", steps = 9, format = "safetensors" },
            new { count = 3, seed = 3UL, @class = 1, sampler = "heun", steps = 5, spacing = "karras", format = "safetensors" },
            new { count = 1, seed = 4UL, @class = 0, sampler = "ddim", steps = 15, guidance = 2.5, format = "safetensors" },
            new { count = 2, seed = 5UL, sampler = "ddpm", steps = 7, format = "safetensors" },
        };
        await TogetherEqualsAlone(requests, "mixed settings");
    }

    /// <summary>A request that arrives while another runs joins it at its own first step instead of waiting for the end.</summary>
    [Fact]
    public async Task ARequestJoinsARunningOneAtItsFirstStep()
    {
        using var cancel = new CancellationTokenSource();
        using var running = await Streaming.Start(Server, "image", new { count = 4, seed = 3, sampler = "euler", steps = 2_000, stream = true }, cancel.Token);
        int before = (await running.NextEvent("progress")).GetProperty("step").GetInt32();
        var plain = await Server.SampleBytes("image", new { count = 1, seed = 9, sampler = "dpm++2m", steps = 10, format = "safetensors" });
        using var response = await Server.Sample("image", new { count = 1, seed = 9, sampler = "dpm++2m", steps = 10, format = "safetensors" });
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        // It shared evaluations with the 4 running rows, and finished long before them.
        Assert.True(int.Parse(response.Headers.GetValues("X-Diffuse-Batch").Single(), System.Globalization.CultureInfo.InvariantCulture) >= 5);
        int after = (await running.NextEvent("progress")).GetProperty("step").GetInt32();
        Assert.InRange(after, before + 1, 1_000);
        using var a = Load(plain);
        using var b = Load(await response.Content.ReadAsByteArrayAsync());
        Assert.True(a.allclose(b, rtol: 0, atol: 1e-5));
        cancel.Cancel();
    }

    [Fact]
    public async Task BatchedImagesAreTheUnbatchedPixels()
    {
        var alone = new List<byte[]>();
        foreach (var request in Requests("png")) alone.Add(await Server.SampleBytes("image", request));
        var together = await Concurrently(Server, "image", Requests("png"));
        int differing = 0, pixels = 0;
        for (int i = 0; i < alone.Count; i++)
        {
            var a = Pngs(alone[i]);
            var b = Pngs(together[i].Bytes);
            Assert.Equal(a.Length, b.Length);
            for (int k = 0; k < a.Length; k++)
            {
                Assert.Equal(a[k].Length, b[k].Length);
                for (int p = 0; p < a[k].Length; p++)
                {
                    int d = Math.Abs(a[k][p] - b[k][p]);
                    Assert.True(d <= 1, $"request {i}, image {k}: a pixel differs by {d} levels");
                    if (d > 0) differing++;
                    pixels++;
                }
            }
        }
        // Usually identical; a value on a rounding boundary may move by one level of 255.
        Assert.True(differing <= pixels / 100, $"{differing} of {pixels} pixels differ by one level");
    }

    [Fact]
    public async Task ProgressArrivesAsServerSentEventsEndingWithTheResult()
    {
        var body = new { count = 3, seed = 4, sampler = "dpm++2m", steps = 6, @class = 1 };
        var plain = await Server.SampleBytes("image", body);
        using var stream = await Streaming.Start(Server, "image", new { count = 3, seed = 4, sampler = "dpm++2m", steps = 6, @class = 1, stream = true, preview = true });
        var queued = await stream.NextEvent("queued");
        Assert.Equal(3, queued.GetProperty("count").GetInt32());
        for (int step = 1; step <= 6; step++)
        {
            var progress = await stream.NextEvent("progress");
            Assert.Equal(step, progress.GetProperty("step").GetInt32());
            Assert.Equal(6, progress.GetProperty("steps").GetInt32());
            foreach (var picture in new[] { "z", "x0" })
            {
                string url = progress.GetProperty(picture).GetString()!;
                Assert.StartsWith("data:image/png;base64,", url);
                using var bitmap = SKBitmap.Decode(Convert.FromBase64String(url[22..]));
                Assert.NotNull(bitmap);
            }
        }
        var result = await stream.NextEvent("result");
        Assert.Equal(plain, Convert.FromBase64String(result.GetProperty("data").GetString()!));
        Assert.Null(await stream.Next());
    }

    [Fact]
    public async Task AClientThatDisconnectsStopsItsWorkWithinOneEvaluation()
    {
        var scheduler = Server.Model("image").Scheduler;
        using var cancel = new CancellationTokenSource();
        var stream = await Streaming.Start(Server, "image", new { count = 64, sampler = "euler", sigmas = "karras", steps = 20_000, stream = true }, cancel.Token);
        int seen = 0;
        var start = Stopwatch.StartNew();
        while (seen < 3) seen = (await stream.NextEvent("progress")).GetProperty("step").GetInt32();
        Assert.True(start.ElapsedMilliseconds < 10_000, $"3 steps took {start.ElapsedMilliseconds} ms");
        var clock = Stopwatch.StartNew();
        cancel.Cancel();
        stream.Dispose();
        await ServeApiTests.Until(() => !scheduler.Busy, 10_000);
        Assert.True(clock.ElapsedMilliseconds < 5_000, $"the run went on for {clock.ElapsedMilliseconds} ms after the client left");
        // A batch goes on for the clients that stay: one of two leaves, the other gets its full result.
        var plain = await Server.SampleBytes("image", new { count = 2, seed = 8, sampler = "euler", sigmas = "karras", steps = 200 });
        using var leaving = new CancellationTokenSource();
        var leaver = Streaming.Start(Server, "image", new { count = 30, seed = 1, sampler = "euler", sigmas = "karras", steps = 200, stream = true }, leaving.Token);
        var stayer = Server.SampleBytes("image", new { count = 2, seed = 8, sampler = "euler", sigmas = "karras", steps = 200 });
        using (var left = await leaver)
        {
            await left.NextEvent("progress");
            leaving.Cancel();
        }
        Assert.Equal(plain, await stayer);
    }

    /// <summary>Sends every request at once and returns each body with the batch it ran in.</summary>
    internal static async Task<(byte[] Bytes, int Count, int Batch)[]> Concurrently(ServerInstance server, string model, object[] requests)
    {
        var tasks = requests.Select(async r =>
        {
            using var response = await server.Sample(model, r);
            var bytes = await response.Content.ReadAsByteArrayAsync();
            Assert.True(response.StatusCode == HttpStatusCode.OK, System.Text.Encoding.UTF8.GetString(bytes));
            int count = JsonDocument.Parse(JsonSerializer.Serialize(r)).RootElement.GetProperty("count").GetInt32();
            return (bytes, count, int.Parse(response.Headers.GetValues("X-Diffuse-Batch").Single(), System.Globalization.CultureInfo.InvariantCulture));
        }).ToArray();
        return await Task.WhenAll(tasks);
    }

    private TorchSharp.torch.Tensor Load(byte[] safetensors)
    {
        string path = Path.Combine(fixture.Root, Guid.NewGuid().ToString("N") + ".safetensors");
        File.WriteAllBytes(path, safetensors);
        try
        {
            return Diffuse.Checkpoints.Safetensors.Load(path)["samples"];
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>The pixels of each PNG of a format=png answer.</summary>
    private static byte[][] Pngs(byte[] json) =>
        JsonDocument.Parse(json).RootElement.GetProperty("images").EnumerateArray().Select(e =>
        {
            using var bitmap = SKBitmap.Decode(Convert.FromBase64String(e.GetProperty("png").GetString()!));
            return bitmap.Pixels.SelectMany(p => new[] { p.Red, p.Green, p.Blue }).ToArray();
        }).ToArray();
}
