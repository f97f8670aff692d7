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
        // Alone, one at a time: each request is its own batch.
        var alone = new List<byte[]>();
        foreach (var request in Requests("safetensors", sampler)) alone.Add(await Server.SampleBytes("image", request));
        var (runsBefore, jobsBefore) = Server.Model("image").Scheduler.Counts;
        // Together: held back until all are queued, then run.
        var together = await Concurrently(Server, "image", Requests("safetensors", sampler));
        var (runs, jobs) = Server.Model("image").Scheduler.Counts;
        Assert.Equal(8, jobs - jobsBefore);
        Assert.True(runs - runsBefore < 8, $"8 concurrent requests took {runs - runsBefore} runs: no batching");
        Assert.Contains(together, r => r.Batch > r.Count);
        for (int i = 0; i < alone.Count; i++)
        {
            // The same noise rows, the same network: equal up to float rounding of a different batch size.
            using var a = Load(alone[i]);
            using var b = Load(together[i].Bytes);
            Assert.True(a.allclose(b, rtol: 0, atol: 1e-5), $"{sampler}, request {i}: largest difference {(a - b).abs().max().item<float>()}");
        }
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
