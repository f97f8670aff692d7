using System.Net;
using System.Text;
using System.Text.Json;
using Diffuse.Cli.Serving;
using Diffuse.Editing;
using Diffuse.Imaging;
using Diffuse.Tests.Training;
using static TorchSharp.torch;

namespace Diffuse.Tests.Serving;

/// <summary>
/// The editing routes of diffuse serve on the shipped Fashion-MNIST model with few steps: each answers with the bytes
/// that the matching command (encode, decode, edit, inpaint, interpolate) writes for the same options, and every bad
/// input is one JSON error with a 4xx status.
/// </summary>
[Collection("Serving")]
public class ServeEditingTests(ServerFixture fixture, ServeEditingTests.FashionServer fashion) : IClassFixture<ServeEditingTests.FashionServer>
{
    private const string Model = "fashion-mnist";

    /// <summary>A server over the shipped Fashion-MNIST model with small caps, and two 28×28 grey PNGs to edit.</summary>
    public sealed class FashionServer : IAsyncLifetime
    {
        private readonly TempDir _dir = new();

        public ServerInstance Server { get; private set; } = null!;

        public string Root => _dir.Path;

        /// <summary>Two 28×28 grey images (a bright square and a bright bar) as PNG files.</summary>
        public string[] Images { get; private set; } = null!;

        public async Task InitializeAsync()
        {
            Images = new[]
            {
                WritePng(Path.Combine(Root, "a-square.png"), 1, 28, 28, (y, x) => x is >= 8 and < 20 && y is >= 6 and < 22 ? 0.9f : 0.05f),
                WritePng(Path.Combine(Root, "b-bar.png"), 1, 28, 28, (y, x) => y is >= 10 and < 18 ? 0.8f : 0.1f),
            };
            Server = await ServerInstance.StartAsync(new ServeOptions(Port: 0, MaxImages: 4, MaxEvaluations: 200), Model);
        }

        public async Task DisposeAsync()
        {
            await Server.DisposeAsync();
            _dir.Dispose();
        }
    }

    private ServerInstance Server => fashion.Server;

    private static string WritePng(string path, int channels, int height, int width, Func<int, int, float> pixel)
    {
        var pixels = new float[channels * height * width];
        for (int c = 0; c < channels; c++)
            for (int y = 0; y < height; y++)
                for (int x = 0; x < width; x++)
                    pixels[(c * height + y) * width + x] = Math.Clamp(pixel(y, x) + 0.2f * c, 0, 1);
        Figures.SaveImageGrid(path, pixels, 1, channels, height, width, 1, padding: 0);
        return path;
    }

    private static string Base64(string file) => Convert.ToBase64String(File.ReadAllBytes(file));

    private string[] Images => fashion.Images.Select(Base64).ToArray();

    private static Task<HttpResponseMessage> Post(ServerInstance server, string model, string route, object body) =>
        server.Client.PostAsync($"/v1/models/{model}/{route}", ServerInstance.Json(body));

    private async Task<byte[]> Bytes(string route, object body)
    {
        using var response = await Post(Server, Model, route, body);
        var bytes = await response.Content.ReadAsByteArrayAsync();
        Assert.True(response.IsSuccessStatusCode, $"{(int)response.StatusCode}: {Encoding.UTF8.GetString(bytes)}");
        return bytes;
    }

    /// <summary>Runs the command in-process and returns the bytes of the file it wrote (empty when it wrote a folder).</summary>
    private byte[] Command(string output, params string[] args)
    {
        string path = Path.Combine(fashion.Root, output);
        var result = Diffuse.Tests.Cli.Cli.Run(args.Concat(new[] { "--model", Model, "--out", path }).ToArray());
        Assert.True(result.Code == 0, result.Err);
        return File.Exists(path) ? File.ReadAllBytes(path) : Array.Empty<byte>();
    }

    /// <summary>The PNGs of a png-format response, in order.</summary>
    private static byte[][] Pngs(byte[] json)
    {
        using var document = JsonDocument.Parse(json);
        return document.RootElement.GetProperty("images").EnumerateArray().Select(i => Convert.FromBase64String(i.GetProperty("png").GetString()!)).ToArray();
    }

    /// <summary>The PNGs a command wrote into a folder, ordered by name.</summary>
    private static byte[][] Folder(string folder) => Directory.GetFiles(folder).Order(StringComparer.Ordinal).Select(File.ReadAllBytes).ToArray();

    [Fact]
    public async Task EncodeAndDecodeAreTheBytesOfTheCommands()
    {
        string files = string.Join(",", fashion.Images);
        var latents = Command("latents.safetensors", "encode", "--images", files, "--steps", "3", "--class", "1", "--guidance", "1.5");
        var served = await Bytes("encode", new { images = Images, steps = 3, @class = 1, guidance = 1.5 });
        Assert.Equal(latents, served);

        // The class edit by inversion: the latents decoded as another class, as a grid and as one PNG per image.
        string file = Path.Combine(fashion.Root, "latents.safetensors");
        var grid = Command("as-sneakers.png", "decode", "--latents", file, "--class", "sneaker");
        Assert.Equal(grid, await Bytes("decode", new { latents = Convert.ToBase64String(served), @class = "sneaker" }));
        Command("decoded", "decode", "--latents", file);
        Assert.Equal(Folder(Path.Combine(fashion.Root, "decoded")), Pngs(await Bytes("decode", new { latents = Convert.ToBase64String(served), format = "png" })));
    }

    [Fact]
    public async Task EditIsTheBytesOfDiffuseEdit()
    {
        string files = string.Join(",", fashion.Images);
        var grid = Command("edit.png", "edit", "--image", files, "--strength", "0.6", "--steps", "4", "--class", "dress", "--guidance", "2", "--seed", "7");
        Assert.Equal(grid, await Bytes("edit", new { images = Images, strength = 0.6, steps = 4, @class = "dress", guidance = 2, seed = 7 }));
        Command("edited", "edit", "--image", files, "--strength", "0.3", "--sampler", "euler-ancestral", "--steps", "5", "--seed", "2");
        Assert.Equal(Folder(Path.Combine(fashion.Root, "edited")),
            Pngs(await Bytes("edit", new { images = Images, strength = 0.3, sampler = "euler-ancestral", steps = 5, seed = 2, format = "png" })));
    }

    [Fact]
    public async Task InpaintIsTheBytesOfDiffuseInpaint()
    {
        string mask = WritePng(Path.Combine(fashion.Root, "mask.png"), 1, 28, 28, (y, _) => y < 14 ? 1f : 0f);
        var repaint = Command("repaint.png", "inpaint", "--image", fashion.Images[0], "--mask", mask, "--resample", "2", "--jump", "2", "--steps", "4", "--seed", "3");
        Assert.Equal(repaint, await Bytes("inpaint", new { images = Images[..1], mask = Base64(mask), resample = 2, jump = 2, steps = 4, seed = 3 }));
        Command("filled", "inpaint", "--image", string.Join(",", fashion.Images), "--mask-rect", "7,7,14,14", "--steps", "3", "--class", "3");
        Assert.Equal(Folder(Path.Combine(fashion.Root, "filled")),
            Pngs(await Bytes("inpaint", new { images = Images, maskRect = "7,7,14,14", steps = 3, @class = 3, format = "png" })));
    }

    [Fact]
    public async Task InterpolateIsTheBytesOfDiffuseInterpolate()
    {
        var gif = Command("morph.gif", "interpolate", "--images", string.Join(",", fashion.Images), "--frames", "3", "--steps", "3");
        Assert.Equal(gif, await Bytes("interpolate", new { images = Images, frames = 3, steps = 3, format = "gif" }));
        var strip = Command("strip.png", "interpolate", "--seeds", "1,2", "--frames", "4", "--steps", "3", "--class", "7", "--linear");
        Assert.Equal(strip, await Bytes("interpolate", new { seeds = new[] { 1, 2 }, frames = 4, steps = 3, @class = 7, linear = true }));
    }

    [Theory]
    [InlineData("encode", typeof(EncodeRequest))]
    [InlineData("decode", typeof(DecodeRequest))]
    [InlineData("edit", typeof(EditRequest))]
    [InlineData("inpaint", typeof(InpaintRequest))]
    [InlineData("interpolate", typeof(InterpolateRequest))]
    public async Task TheOpenApiDescriptionNamesEveryFieldOfEachRoute(string route, Type request)
    {
        using var openapi = JsonDocument.Parse(await Server.Client.GetStringAsync("/openapi.json"));
        var root = openapi.RootElement;
        Assert.True(root.GetProperty("paths").TryGetProperty($"/v1/models/{{name}}/{route}", out var path), route);
        string reference = path.GetProperty("post").GetProperty("requestBody").GetProperty("content").GetProperty("application/json").GetProperty("schema").GetProperty("$ref").GetString()!;
        var schema = root.GetProperty("components").GetProperty("schemas").GetProperty(reference.Split('/')[^1]);
        var described = schema.GetProperty("properties").EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal);
        // Decoding runs the recorded sampler: its sampler fields exist only to be refused with that reason.
        var refused = route == "decode" ? new[] { "sampler", "steps", "sigmas", "spacing", "eta", "variance" } : Array.Empty<string>();
        var fields = request.GetProperties().Select(p => p.Name == "Class" ? "class" : JsonNamingPolicy.CamelCase.ConvertName(p.Name))
            .Except(refused).Order(StringComparer.Ordinal);
        Assert.Equal(fields, described);
    }

    [Fact]
    public async Task AStreamedEditReportsItsStepsAndEndsWithTheSameBytes()
    {
        var request = new { images = Images[..1], strength = 0.5, steps = 4, seed = 1 };
        var plain = await Bytes("edit", request);
        var streamed = await Streaming.Start(Server, Model, new { images = Images[..1], strength = 0.5, steps = 4, seed = 1, stream = true }, route: "edit");
        var progress = await streamed.NextEvent("progress");
        Assert.Equal("edit", progress.GetProperty("phase").GetString());
        Assert.Equal(2, progress.GetProperty("steps").GetInt32());
        var result = await streamed.NextEvent("result");
        Assert.Equal("image/png", result.GetProperty("contentType").GetString());
        Assert.Equal(plain, Convert.FromBase64String(result.GetProperty("data").GetString()!));
        streamed.Dispose();
    }

    [Fact]
    public async Task EveryBadInputIsOneJsonErrorWithA4xxStatus()
    {
        var s = Server;
        string big = Base64(WritePng(Path.Combine(fashion.Root, "big.png"), 1, 10, 10, (y, x) => (x + y) / 20f));
        string rgb = Base64(WritePng(Path.Combine(fashion.Root, "rgb.png"), 3, 28, 28, (y, x) => x / 28f));
        string corrupt = Convert.ToBase64String(Encoding.ASCII.GetBytes("\x89PNG\r\n\x1a\n not really a PNG"));
        var images = Images;
        async Task Error(string route, object body, int status, string code, params string[] fragments) =>
            await ServerInstance.AssertError(await Post(s, Model, route, body), status, code, fragments);

        // Images: size and channels (unless resized), corrupt or not base64, missing, too many.
        await Error("edit", new { images = new[] { big } }, 400, "invalid_request", "'images[0]' is grey 10×10", "grey 28×28", "'resize'");
        await Error("encode", new { images = new[] { images[0], rgb } }, 400, "invalid_request", "'images[1]' is RGB 28×28");
        await Error("edit", new { images = new[] { corrupt } }, 400, "invalid_request", "Cannot read image 'images[0]'");
        await Error("edit", new { images = new[] { "not base64!" } }, 400, "invalid_request", "'images[0]'", "base64");
        await Error("edit", new { strength = 0.5 }, 400, "invalid_request", "'images' is required");
        await Error("encode", new { images = Enumerable.Repeat(images[0], 5).ToArray() }, 400, "invalid_request", "limit of 4 images");
        // Options: strength, class, sampler, caps, fields, formats.
        foreach (var strength in new[] { 0, 1.5, -0.2 })
            await Error("edit", new { images, strength }, 400, "invalid_request", "'strength'", "(0, 1]");
        await Error("edit", new { images, @class = "unicorn" }, 400, "invalid_request", "'class' unicorn", "0 …");
        await Error("inpaint", new { images, maskRect = "1,1,4,4", @class = 10 }, 400, "invalid_request", "'class' 10");
        await Error("encode", new { images, sampler = "ddpm" }, 400, "invalid_request", "deterministic", "'sampler'");
        await Error("edit", new { images, steps = 500, sampler = "euler" }, 400, "invalid_request", "limit of 200");
        await Error("inpaint", new { images, maskRect = "1,1,4,4", steps = 50, resample = 10 }, 400, "invalid_request", "limit of 200");
        await Error("edit", new { images, @out = "/etc/passwd" }, 400, "invalid_request", "not a valid edit request", "out");
        await Error("encode", new { images, strength = 0.5 }, 400, "invalid_request", "not a valid encode request", "strength");
        await Error("edit", new { images, format = "gif" }, 400, "invalid_request", "'format'", "grid, png");
        await Error("edit", "{\"images\": [", 400, "invalid_request", "not a valid edit request");
        // Masks: of another size, a rectangle outside the image, none.
        await Error("inpaint", new { images, mask = big }, 400, "invalid_request", "the mask is 10×10", "28×28");
        await Error("inpaint", new { images, maskRect = "20,20,14,14" }, 400, "invalid_request", "'maskRect'", "inside");
        await Error("inpaint", new { images }, 400, "invalid_request", "'mask'", "'maskRect'");
        await Error("inpaint", new { images, maskRect = "1,1,4,4", resample = 0 }, 400, "invalid_request", "'resample'");
        // Interpolation's ends and frames.
        await Error("interpolate", new { images = new[] { images[0], images[1], images[0] } }, 400, "invalid_request", "'images' takes exactly two");
        await Error("interpolate", new { seeds = new[] { 1 } }, 400, "invalid_request", "'seeds' takes two seeds");
        await Error("interpolate", new { seeds = new[] { 1, 2 }, images }, 400, "invalid_request", "one of 'images'", "'seeds'");
        await Error("interpolate", new { seeds = new[] { 1, 2 }, frames = 1 }, 400, "invalid_request", "'frames'");
        // Latents: not a latent file, another model's, of the wrong shape; sampler options do not apply.
        await Error("decode", new { latents = corrupt }, 400, "invalid_request", "'latents'");
        using var wrong = await Post(s, Model, "decode", new { latents = corrupt });
        Assert.DoesNotContain(Path.GetTempPath(), await wrong.Content.ReadAsStringAsync());
        string other = Path.Combine(fashion.Root, "other.safetensors");
        var tiny = await Post(fixture.Server, "image", "encode", new { images = new[] { Base64(WritePng(Path.Combine(fashion.Root, "tiny.png"), 1, 8, 8, (y, x) => x / 8f)) }, steps = 2 });
        Assert.True(tiny.IsSuccessStatusCode, await tiny.Content.ReadAsStringAsync());
        await Error("decode", new { latents = Convert.ToBase64String(await tiny.Content.ReadAsByteArrayAsync()) }, 400, "invalid_request", "another model");
        var identity = s.Model(Model).Model.Identity;
        using (var small = zeros(1, 1, 8, 8))
            LatentFile.Save(other, small, new LatentInfo(identity, Model, "dpm++2m", 2, new[] { 10.0, 1.0, 0.0 }, new[] { -1L }, 1));
        await Error("decode", new { latents = Base64(other) }, 400, "invalid_request", "the latents are [1, 1, 8, 8]", "[N, 1, 28, 28]");
        await Error("decode", new { latents = Base64(other), steps = 3 }, 400, "invalid_request", "do not apply");
        await Error("decode", new { }, 400, "invalid_request", "'latents' is required");
        // A table model cannot be edited; an unknown model is 404.
        await ServerInstance.AssertError(await Post(fixture.Server, "table", "edit", new { images }), 400, "invalid_request", "needs an image model", "table");
        await ServerInstance.AssertError(await Post(s, "nope", "inpaint", new { images }), 404, "unknown_model");
        // Media type and body size: up to 4 MiB is read (a 100 kB image is fine with resize), more is refused.
        await ServerInstance.AssertError(await s.Client.PostAsync($"/v1/models/{Model}/edit", new StringContent("x", Encoding.UTF8, "text/plain")), 415, "unsupported_media_type");
        var random = new Random(1);
        string noise = Base64(WritePng(Path.Combine(fashion.Root, "noise.png"), 3, 200, 200, (_, _) => random.NextSingle()));
        Assert.True(noise.Length > 100_000);
        using (var resized = await Post(s, Model, "edit", new { images = new[] { noise }, resize = true, strength = 0.2, steps = 2 }))
            Assert.True(resized.IsSuccessStatusCode, await resized.Content.ReadAsStringAsync());
        // Expect: 100-continue lets the server refuse the body before the client has sent it all.
        using var huge = new HttpRequestMessage(HttpMethod.Post, $"/v1/models/{Model}/edit") { Content = ServerInstance.Json(new { images = new[] { new string('A', 5 * 1024 * 1024) } }) };
        huge.Headers.ExpectContinue = true;
        await ServerInstance.AssertError(await s.Client.SendAsync(huge), 413, "body_too_large", "4,194,304");
        await ServerInstance.AssertError(await s.Sample(Model, "{\"sampler\": \"" + new string('x', 100_000) + "\"}"), 413, "body_too_large", "65,536");
    }

    [Fact]
    public async Task EditingNeedsTheApiKeyAndADisconnectedClientStopsItsWork()
    {
        const string key = "0123456789abcdef-secret";
        await using var keyed = await ServerInstance.StartAsync(new ServeOptions(Port: 0, ApiKey: key, MaxEvaluations: 20_000), fixture.ImageModel);
        string image = Base64(WritePng(Path.Combine(fashion.Root, "eight.png"), 1, 8, 8, (y, x) => y / 8f));
        await ServerInstance.AssertError(await Post(keyed, "image", "edit", new { images = new[] { image } }), 401, "unauthorized");
        keyed.Client.DefaultRequestHeaders.Add("X-Api-Key", key);

        // A long edit (20,000 steps) is cancelled by its client after its first step: the worker is free again at once.
        using var cancel = new CancellationTokenSource();
        var running = await Streaming.Start(keyed, "image", new { images = new[] { image }, strength = 1, sampler = "euler", sigmas = "karras", steps = 20_000, stream = true }, cancel.Token, route: "edit");
        await running.NextEvent("progress");
        var scheduler = keyed.Model("image").Scheduler;
        Assert.True(scheduler.Busy);
        cancel.Cancel();
        running.Dispose();
        await ServeApiTests.Until(() => !scheduler.Busy, timeoutMs: 10_000, describe: () => "the cancelled edit still runs");
        using var after = await Post(keyed, "image", "edit", new { images = new[] { image }, steps = 2 });
        Assert.Equal(HttpStatusCode.OK, after.StatusCode);
    }
}
