using Diffuse.Models;
using Diffuse.Optimization;
using Diffuse.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Diffuse.Tests.Models;

public class UNetTests
{
    private static UNetConfig Tiny(int channels) => new()
    {
        Channels = channels, BaseChannels = 8, ChannelMultipliers = [1, 2, 2], BlocksPerLevel = 1, AttentionResolutions = [4], Heads = 2,
    };

    /// <summary>Replaces every weight (including the zero-initialised ones) by noise, as a trained network would have.</summary>
    private static void Randomise(UNetNetwork network, int seed)
    {
        using var noGrad = no_grad();
        var generator = new Generator((ulong)seed);
        foreach (var p in network.parameters()) p.copy_(randn(p.shape, generator: generator) * 0.3);
    }

    private static Tensor Timesteps(int batch) => linspace(0, 99, batch).to_type(ScalarType.Float32);

    [Theory]
    [InlineData(1, 28, 28)]
    [InlineData(3, 32, 32)]
    [InlineData(2, 24, 40)]
    [InlineData(1, 27, 19)]
    [InlineData(3, 5, 9)]
    public void OutputHasTheInputShapeForAnySizeAndChannelCount(int channels, int height, int width)
    {
        manual_seed(1);
        using var network = new UNetNetwork(Tiny(channels), 100);
        Randomise(network, 2);
        using var scope = NewDisposeScope();
        var z = randn(2, channels, height, width);
        var output = network.call(z, Timesteps(2), null);
        Assert.Equal(z.shape, output.shape);
        Assert.True(output.isfinite().all().item<bool>());
    }

    [Fact]
    public void LearnedVarianceDoublesTheOutputChannels()
    {
        manual_seed(1);
        using var network = new UNetNetwork(Tiny(3) with { OutputChannelsMultiplier = 2 }, 100);
        using var scope = NewDisposeScope();
        var output = network.call(randn(2, 3, 12, 10), Timesteps(2), null);
        Assert.Equal(new long[] { 2, 6, 12, 10 }, output.shape);
    }

    [Fact]
    public void StateDictKeysAndShapesAreStable()
    {
        // Checkpoints and PyTorch readers depend on these names: a rename must be deliberate.
        string[] expected =
        [
        "time_mlp.0.weight [32,8]",
        "time_mlp.0.bias [32]",
        "time_mlp.2.weight [32,32]",
        "time_mlp.2.bias [32]",
        "class_embedding.weight [4,32]",
        "input_conv.weight [8,2,3,3]",
        "input_conv.bias [8]",
        "down.0.res.0.in_norm.weight [8]",
        "down.0.res.0.in_norm.bias [8]",
        "down.0.res.0.in_conv.weight [8,8,3,3]",
        "down.0.res.0.in_conv.bias [8]",
        "down.0.res.0.time_proj.weight [16,32]",
        "down.0.res.0.time_proj.bias [16]",
        "down.0.res.0.out_norm.weight [8]",
        "down.0.res.0.out_norm.bias [8]",
        "down.0.res.0.out_conv.weight [8,8,3,3]",
        "down.0.res.0.out_conv.bias [8]",
        "down.0.downsample.weight [8,8,3,3]",
        "down.0.downsample.bias [8]",
        "down.1.res.0.in_norm.weight [8]",
        "down.1.res.0.in_norm.bias [8]",
        "down.1.res.0.in_conv.weight [16,8,3,3]",
        "down.1.res.0.in_conv.bias [16]",
        "down.1.res.0.time_proj.weight [32,32]",
        "down.1.res.0.time_proj.bias [32]",
        "down.1.res.0.out_norm.weight [16]",
        "down.1.res.0.out_norm.bias [16]",
        "down.1.res.0.out_conv.weight [16,16,3,3]",
        "down.1.res.0.out_conv.bias [16]",
        "down.1.res.0.skip.weight [16,8,1,1]",
        "down.1.res.0.skip.bias [16]",
        "down.1.attn.0.norm.weight [16]",
        "down.1.attn.0.norm.bias [16]",
        "down.1.attn.0.qkv.weight [48,16,1,1]",
        "down.1.attn.0.qkv.bias [48]",
        "down.1.attn.0.proj.weight [16,16,1,1]",
        "down.1.attn.0.proj.bias [16]",
        "mid.res1.in_norm.weight [16]",
        "mid.res1.in_norm.bias [16]",
        "mid.res1.in_conv.weight [16,16,3,3]",
        "mid.res1.in_conv.bias [16]",
        "mid.res1.time_proj.weight [32,32]",
        "mid.res1.time_proj.bias [32]",
        "mid.res1.out_norm.weight [16]",
        "mid.res1.out_norm.bias [16]",
        "mid.res1.out_conv.weight [16,16,3,3]",
        "mid.res1.out_conv.bias [16]",
        "mid.attn.norm.weight [16]",
        "mid.attn.norm.bias [16]",
        "mid.attn.qkv.weight [48,16,1,1]",
        "mid.attn.qkv.bias [48]",
        "mid.attn.proj.weight [16,16,1,1]",
        "mid.attn.proj.bias [16]",
        "mid.res2.in_norm.weight [16]",
        "mid.res2.in_norm.bias [16]",
        "mid.res2.in_conv.weight [16,16,3,3]",
        "mid.res2.in_conv.bias [16]",
        "mid.res2.time_proj.weight [32,32]",
        "mid.res2.time_proj.bias [32]",
        "mid.res2.out_norm.weight [16]",
        "mid.res2.out_norm.bias [16]",
        "mid.res2.out_conv.weight [16,16,3,3]",
        "mid.res2.out_conv.bias [16]",
        "up.0.res.0.in_norm.weight [24]",
        "up.0.res.0.in_norm.bias [24]",
        "up.0.res.0.in_conv.weight [8,24,3,3]",
        "up.0.res.0.in_conv.bias [8]",
        "up.0.res.0.time_proj.weight [16,32]",
        "up.0.res.0.time_proj.bias [16]",
        "up.0.res.0.out_norm.weight [8]",
        "up.0.res.0.out_norm.bias [8]",
        "up.0.res.0.out_conv.weight [8,8,3,3]",
        "up.0.res.0.out_conv.bias [8]",
        "up.0.res.0.skip.weight [8,24,1,1]",
        "up.0.res.0.skip.bias [8]",
        "up.0.res.1.in_norm.weight [16]",
        "up.0.res.1.in_norm.bias [16]",
        "up.0.res.1.in_conv.weight [8,16,3,3]",
        "up.0.res.1.in_conv.bias [8]",
        "up.0.res.1.time_proj.weight [16,32]",
        "up.0.res.1.time_proj.bias [16]",
        "up.0.res.1.out_norm.weight [8]",
        "up.0.res.1.out_norm.bias [8]",
        "up.0.res.1.out_conv.weight [8,8,3,3]",
        "up.0.res.1.out_conv.bias [8]",
        "up.0.res.1.skip.weight [8,16,1,1]",
        "up.0.res.1.skip.bias [8]",
        "up.1.res.0.in_norm.weight [32]",
        "up.1.res.0.in_norm.bias [32]",
        "up.1.res.0.in_conv.weight [16,32,3,3]",
        "up.1.res.0.in_conv.bias [16]",
        "up.1.res.0.time_proj.weight [32,32]",
        "up.1.res.0.time_proj.bias [32]",
        "up.1.res.0.out_norm.weight [16]",
        "up.1.res.0.out_norm.bias [16]",
        "up.1.res.0.out_conv.weight [16,16,3,3]",
        "up.1.res.0.out_conv.bias [16]",
        "up.1.res.0.skip.weight [16,32,1,1]",
        "up.1.res.0.skip.bias [16]",
        "up.1.res.1.in_norm.weight [24]",
        "up.1.res.1.in_norm.bias [24]",
        "up.1.res.1.in_conv.weight [16,24,3,3]",
        "up.1.res.1.in_conv.bias [16]",
        "up.1.res.1.time_proj.weight [32,32]",
        "up.1.res.1.time_proj.bias [32]",
        "up.1.res.1.out_norm.weight [16]",
        "up.1.res.1.out_norm.bias [16]",
        "up.1.res.1.out_conv.weight [16,16,3,3]",
        "up.1.res.1.out_conv.bias [16]",
        "up.1.res.1.skip.weight [16,24,1,1]",
        "up.1.res.1.skip.bias [16]",
        "up.1.attn.0.norm.weight [16]",
        "up.1.attn.0.norm.bias [16]",
        "up.1.attn.0.qkv.weight [48,16,1,1]",
        "up.1.attn.0.qkv.bias [48]",
        "up.1.attn.0.proj.weight [16,16,1,1]",
        "up.1.attn.0.proj.bias [16]",
        "up.1.attn.1.norm.weight [16]",
        "up.1.attn.1.norm.bias [16]",
        "up.1.attn.1.qkv.weight [48,16,1,1]",
        "up.1.attn.1.qkv.bias [48]",
        "up.1.attn.1.proj.weight [16,16,1,1]",
        "up.1.attn.1.proj.bias [16]",
        "up.1.upsample.conv.weight [16,16,3,3]",
        "up.1.upsample.conv.bias [16]",
        "out_norm.weight [8]",
        "out_norm.bias [8]",
        "out_conv.weight [2,8,3,3]",
        "out_conv.bias [2]",
        ];
        manual_seed(1);
        using var network = new UNetNetwork(new UNetConfig
        {
            Channels = 2, BaseChannels = 8, ChannelMultipliers = [1, 2], BlocksPerLevel = 1, AttentionResolutions = [2], Heads = 2,
            NumClasses = 3, ScaleShiftNorm = true,
        }, 100);
        var actual = network.state_dict().Select(kv => $"{kv.Key} [{string.Join(",", kv.Value.shape)}]").ToArray();
        Assert.Equal(expected, actual);
    }

    [Fact]
    public void TheReferenceConfigurationHas1623169ParametersAnd554MegaflopsPerImage()
    {
        // 28×28×1, base 32, multipliers 1,2,2, two blocks per level, attention at 7×7 and in the middle, embedding 128.
        manual_seed(1);
        using var network = new UNetNetwork(new UNetConfig { Channels = 1 }, 1000);
        Assert.Equal(1_623_169, network.parameters().Sum(p => p.numel()));
        Assert.Equal(554_397_184, network.ForwardFlops(28, 28));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TimestepsAndClassesChangeTheOutputAndTheNullClassIsUnconditional(bool scaleShift)
    {
        manual_seed(1);
        using var network = new UNetNetwork(Tiny(1) with { NumClasses = 10, ScaleShiftNorm = scaleShift }, 100);
        Randomise(network, 3);
        network.eval();
        using var scope = NewDisposeScope();
        var z = randn(4, 1, 16, 12);
        var t = Timesteps(4);
        var unconditional = network.call(z, t, null);
        var nullClass = network.call(z, t, full(4, (long)network.NullClass, dtype: ScalarType.Int64));
        var classA = network.call(z, t, tensor(new long[] { 0, 1, 2, 3 }));
        var classB = network.call(z, t, tensor(new long[] { 4, 5, 6, 7 }));
        Assert.Equal(10, network.NullClass);
        Assert.True(unconditional.allclose(nullClass, rtol: 0, atol: 0));
        Assert.True((classA - classB).abs().max().item<float>() > 1e-3);
        Assert.True((classA - unconditional).abs().max().item<float>() > 1e-3);
        var later = network.call(z, t + 10, null);
        Assert.True((later - unconditional).abs().max().item<float>() > 1e-3);
    }

    [Theory]
    [InlineData(32, 8)]
    [InlineData(64, 16)]
    [InlineData(128, 32)]
    [InlineData(256, 32)]
    [InlineData(96, 24)]
    [InlineData(24, 6)]
    [InlineData(8, 2)]
    [InlineData(7, 1)]
    [InlineData(3, 1)]
    public void GroupNormKeepsAtLeastFourChannelsPerGroup(int channels, int groups) => Assert.Equal(groups, UNetConfig.NormGroups(channels));

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void AttentionMatchesTheExplicitSoftmaxFormulaPerHead(bool channelsLast)
    {
        const int channels = 12, heads = 3, d = channels / heads;
        manual_seed(5);
        using var block = new UNetAttentionBlock(channels, heads, new UNetLayout { ChannelsLast = channelsLast }, "attn");
        using var scope = NewDisposeScope();
        using (no_grad()) foreach (var p in block.parameters()) p.copy_(randn(p.shape) * 0.5);
        var x = randn(2, channels, 3, 5);
        var weights = block.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach());

        // Attention(Q, K, V) = softmax(Q·Kᵀ/√d)·V for each head, positions as the sequence (Vaswani et al. 2017, eq. 1).
        var normed = nn.functional.group_norm(x, UNetConfig.NormGroups(channels), weights["norm.weight"], weights["norm.bias"]);
        var qkv = nn.functional.conv2d(normed, weights["qkv.weight"], weights["qkv.bias"]).flatten(2); // [B, 3C, N]
        var perHead = new List<Tensor>();
        for (int h = 0; h < heads; h++)
        {
            var q = qkv.narrow(1, h * d, d).transpose(1, 2);
            var k = qkv.narrow(1, channels + h * d, d).transpose(1, 2);
            var v = qkv.narrow(1, 2 * channels + h * d, d).transpose(1, 2);
            var attention = (q.matmul(k.transpose(1, 2)) / Math.Sqrt(d)).softmax(-1);
            perHead.Add(attention.matmul(v).transpose(1, 2)); // [B, d, N]
        }
        var merged = cat(perHead.ToArray(), 1).reshape(x.shape);
        var expected = x + nn.functional.conv2d(merged, weights["proj.weight"], weights["proj.bias"]);

        Assert.True(block.call(channelsLast ? UNetLayers.ChannelsLast(x) : x).allclose(expected, rtol: 1e-4, atol: 1e-5));
    }

    [Fact]
    public void AnUnconditionalNetworkRejectsClassLabels()
    {
        manual_seed(1);
        using var network = new UNetNetwork(Tiny(1), 100);
        using var scope = NewDisposeScope();
        var error = Assert.Throws<DiffuseException>(() => network.call(randn(1, 1, 8, 8), Timesteps(1), tensor(new long[] { 0 })));
        Assert.Contains("unconditional", error.Message);
    }

    [Fact]
    public void TheConfigurationRoundTripsThroughTheCheckpointJson()
    {
        var options = Diffuse.Configuration.DiffusionModelConfig.JsonOptions;
        var config = new UNetConfig
        {
            Channels = 3, BaseChannels = 64, ChannelMultipliers = [1, 2, 2, 4], BlocksPerLevel = 3, AttentionResolutions = [2, 4],
            Heads = 8, TimeEmbedding = 192, Dropout = 0.2, ScaleShiftNorm = true, NumClasses = 10, OutputChannelsMultiplier = 2,
        };
        string json = System.Text.Json.JsonSerializer.Serialize(config, options);
        var back = System.Text.Json.JsonSerializer.Deserialize<UNetConfig>(json, options)!;
        Assert.Equal(json, System.Text.Json.JsonSerializer.Serialize(back, options));
        Assert.Equal([1, 2, 2, 4], back.ChannelMultipliers);
        Assert.Equal(192, back.TimeEmbeddingWidth);
        Assert.DoesNotContain("timeEmbeddingWidth", json);
        var defaults = System.Text.Json.JsonSerializer.Deserialize<UNetConfig>("{\"channels\": 1}", options)!;
        Assert.Equal(128, defaults.TimeEmbeddingWidth);
        Assert.Equal([1, 2, 2], defaults.ChannelMultipliers);
    }

    [Fact]
    public void InvalidConfigurationsAreNamed()
    {
        Assert.Contains("heads", Assert.Throws<DiffuseException>(() => (Tiny(1) with { Heads = 3 }).Validate()).Message);
        Assert.Contains("attention resolution 3", Assert.Throws<DiffuseException>(() => (Tiny(1) with { AttentionResolutions = [3] }).Validate()).Message);
        Assert.Contains("attention resolution 8", Assert.Throws<DiffuseException>(() => (Tiny(1) with { AttentionResolutions = [8] }).Validate()).Message);
        Assert.Contains("dropout", Assert.Throws<DiffuseException>(() => (Tiny(1) with { Dropout = 1 }).Validate()).Message);
    }

    [Fact]
    public void TheZeroInitialisedOutputGivesZerosUntilTheFirstStep()
    {
        manual_seed(1);
        using var network = new UNetNetwork(Tiny(1), 100);
        using var optimizer = new AdamW(network.parameters());
        using var scope = NewDisposeScope();
        var z = randn(4, 1, 12, 12);
        var t = Timesteps(4);
        network.eval();
        using (no_grad()) Assert.Equal(0f, network.call(z, t, null).abs().max().item<float>());

        network.train();
        var loss = nn.functional.mse_loss(network.call(z, t, null), randn(4, 1, 12, 12));
        optimizer.ZeroGrad();
        loss.backward();
        optimizer.Step(1e-3, 0);
        network.eval();
        using (no_grad()) Assert.True(network.call(z, t, null).abs().max().item<float>() > 1e-5);
    }

    [Fact]
    public void ChannelsLastAndTheStandardLayoutGiveTheSameOutputAndGradients()
    {
        manual_seed(1);
        using var network = new UNetNetwork(Tiny(2) with { NumClasses = 3, ScaleShiftNorm = true }, 100);
        Randomise(network, 6);
        network.eval();
        using var scope = NewDisposeScope();
        var z = randn(3, 2, 13, 10);
        var t = Timesteps(3);
        var classes = tensor(new long[] { 0, 1, 3 });
        (Tensor Output, Tensor[] Gradients) Run(bool channelsLast)
        {
            network.ChannelsLast = channelsLast;
            foreach (var p in network.parameters()) p.grad?.zero_();
            var output = network.call(z, t, classes);
            output.square().sum().backward();
            return (output.detach(), network.parameters().Select(p => p.grad!.clone()).ToArray());
        }
        var (fast, fastGradients) = Run(true);
        var (standard, standardGradients) = Run(false);
        Assert.True(fast.is_contiguous());
        Assert.True(fast.allclose(standard, rtol: 1e-4, atol: 1e-5));
        for (int i = 0; i < fastGradients.Length; i++)
            Assert.True(fastGradients[i].allclose(standardGradients[i], rtol: 1e-3, atol: 1e-5), $"gradient {i}");
    }

    [Fact]
    public void InPlaceInferenceGivesTheSameOutputAsTheAutogradPath()
    {
        manual_seed(1);
        using var network = new UNetNetwork(Tiny(1) with { ScaleShiftNorm = true, NumClasses = 2 }, 100);
        Randomise(network, 7);
        network.eval();
        using var scope = NewDisposeScope();
        var z = randn(2, 1, 11, 9);
        var t = Timesteps(2);
        var classes = tensor(new long[] { 1, 0 });
        var withAutograd = network.call(z, t, classes);
        Tensor inPlace;
        using (no_grad()) inPlace = network.call(z, t, classes);
        Assert.True(withAutograd.requires_grad);
        Assert.True(inPlace.allclose(withAutograd.detach(), rtol: 1e-5, atol: 1e-6));
    }

    [Fact]
    public void DropoutZeroesTheRightFractionKeepsTheMeanAndIsOffInEvaluation()
    {
        manual_seed(2);
        using var scope = NewDisposeScope();
        var x = ones(200_000);
        var dropped = UNetLayers.Dropout(x, 0.1);
        Assert.Equal(0.1, dropped.eq(0).to_type(ScalarType.Float32).mean().item<float>(), 0.005);
        Assert.Equal(1.0, dropped.mean().item<float>(), 0.01);

        using var network = new UNetNetwork(Tiny(1) with { Dropout = 0.3 }, 100);
        Randomise(network, 8);
        var z = randn(2, 1, 8, 8);
        var t = Timesteps(2);
        network.train();
        Assert.False(network.call(z, t, null).allclose(network.call(z, t, null)));
        network.eval();
        Assert.True(network.call(z, t, null).allclose(network.call(z, t, null), rtol: 0, atol: 0));
    }

    [Fact]
    public void AnInferenceCopyMatchesInFloat32AndIsCloseInBFloat16()
    {
        manual_seed(1);
        using var network = new UNetNetwork(Tiny(1), 100);
        Randomise(network, 4);
        network.eval();
        using var copy = network.CopyForInference();
        using var half = network.CopyForInference(ScalarType.BFloat16);
        using var inference = inference_mode();
        using var scope = NewDisposeScope();
        var z = randn(3, 1, 14, 14);
        var t = Timesteps(3);
        var reference = network.call(z, t, null);
        Assert.True(reference.allclose(copy.call(z, t, null), rtol: 0, atol: 0));
        var bf16 = half.call(z.to_type(ScalarType.BFloat16), t, null);
        Assert.Equal(ScalarType.BFloat16, bf16.dtype);
        double error = (bf16.to_type(ScalarType.Float32) - reference).abs().max().item<float>();
        double scale = reference.abs().max().item<float>();
        Assert.True(error < 0.05 * scale, $"bf16 error {error} vs output scale {scale}");
        Assert.True(network.parameters().All(p => p.requires_grad), "the original keeps its gradients");
    }

    [Fact]
    public void TrainingStepsDoNotLeakTensors()
    {
        manual_seed(1);
        using var network = new UNetNetwork(Tiny(1) with { NumClasses = 3 }, 100);
        using var optimizer = new AdamW(network.parameters());
        network.train();
        long? after2 = null;
        for (int step = 0; step < 20; step++)
        {
            using (var scope = NewDisposeScope())
            {
                var z = randn(4, 1, 12, 12);
                var output = network.call(z, Timesteps(4), tensor(new long[] { 0, 1, 2, 3 }));
                var loss = nn.functional.mse_loss(output, z);
                optimizer.ZeroGrad();
                loss.backward();
                optimizer.Step(1e-3, 0.01);
                loss.item<float>();
            }
            if (step == 1) after2 = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        }
        Assert.Equal(after2, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }
}
