using Diffuse.Checkpoints;
using Diffuse.Evaluation.Features;
using Diffuse.Tests.Training;
using static TorchSharp.torch;

namespace Diffuse.Tests.Evaluation.Features;

public class FidInceptionV3Tests
{
    /// <summary>
    /// Every BasicConv2d of torchvision's Inception3 without AuxLogits, written out from the architecture (Szegedy et
    /// al. 2016, Table 1; torchvision's inception.py): (state-dict prefix, in, out, kernel height, kernel width).
    /// </summary>
    internal static List<(string Name, int In, int Out, int Kh, int Kw)> Convolutions()
    {
        var list = new List<(string, int, int, int, int)>
        {
            ("Conv2d_1a_3x3", 3, 32, 3, 3), ("Conv2d_2a_3x3", 32, 32, 3, 3), ("Conv2d_2b_3x3", 32, 64, 3, 3),
            ("Conv2d_3b_1x1", 64, 80, 1, 1), ("Conv2d_4a_3x3", 80, 192, 3, 3),
        };
        foreach (var (block, c, pool) in new[] { ("Mixed_5b", 192, 32), ("Mixed_5c", 256, 64), ("Mixed_5d", 288, 64) })
        {
            list.Add(($"{block}.branch1x1", c, 64, 1, 1));
            list.Add(($"{block}.branch5x5_1", c, 48, 1, 1));
            list.Add(($"{block}.branch5x5_2", 48, 64, 5, 5));
            list.Add(($"{block}.branch3x3dbl_1", c, 64, 1, 1));
            list.Add(($"{block}.branch3x3dbl_2", 64, 96, 3, 3));
            list.Add(($"{block}.branch3x3dbl_3", 96, 96, 3, 3));
            list.Add(($"{block}.branch_pool", c, pool, 1, 1));
        }
        list.Add(("Mixed_6a.branch3x3", 288, 384, 3, 3));
        list.Add(("Mixed_6a.branch3x3dbl_1", 288, 64, 1, 1));
        list.Add(("Mixed_6a.branch3x3dbl_2", 64, 96, 3, 3));
        list.Add(("Mixed_6a.branch3x3dbl_3", 96, 96, 3, 3));
        foreach (var (block, c7) in new[] { ("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192) })
        {
            list.Add(($"{block}.branch1x1", 768, 192, 1, 1));
            list.Add(($"{block}.branch7x7_1", 768, c7, 1, 1));
            list.Add(($"{block}.branch7x7_2", c7, c7, 1, 7));
            list.Add(($"{block}.branch7x7_3", c7, 192, 7, 1));
            list.Add(($"{block}.branch7x7dbl_1", 768, c7, 1, 1));
            list.Add(($"{block}.branch7x7dbl_2", c7, c7, 7, 1));
            list.Add(($"{block}.branch7x7dbl_3", c7, c7, 1, 7));
            list.Add(($"{block}.branch7x7dbl_4", c7, c7, 7, 1));
            list.Add(($"{block}.branch7x7dbl_5", c7, 192, 1, 7));
            list.Add(($"{block}.branch_pool", 768, 192, 1, 1));
        }
        list.Add(("Mixed_7a.branch3x3_1", 768, 192, 1, 1));
        list.Add(("Mixed_7a.branch3x3_2", 192, 320, 3, 3));
        list.Add(("Mixed_7a.branch7x7x3_1", 768, 192, 1, 1));
        list.Add(("Mixed_7a.branch7x7x3_2", 192, 192, 1, 7));
        list.Add(("Mixed_7a.branch7x7x3_3", 192, 192, 7, 1));
        list.Add(("Mixed_7a.branch7x7x3_4", 192, 192, 3, 3));
        foreach (var (block, c) in new[] { ("Mixed_7b", 1280), ("Mixed_7c", 2048) })
        {
            list.Add(($"{block}.branch1x1", c, 320, 1, 1));
            list.Add(($"{block}.branch3x3_1", c, 384, 1, 1));
            list.Add(($"{block}.branch3x3_2a", 384, 384, 1, 3));
            list.Add(($"{block}.branch3x3_2b", 384, 384, 3, 1));
            list.Add(($"{block}.branch3x3dbl_1", c, 448, 1, 1));
            list.Add(($"{block}.branch3x3dbl_2", 448, 384, 3, 3));
            list.Add(($"{block}.branch3x3dbl_3a", 384, 384, 1, 3));
            list.Add(($"{block}.branch3x3dbl_3b", 384, 384, 3, 1));
            list.Add(($"{block}.branch_pool", c, 192, 1, 1));
        }
        return list;
    }

    /// <summary>The parameters and running statistics of <see cref="Convolutions"/>, by key, with their shapes.</summary>
    static Dictionary<string, long[]> ExpectedShapes()
    {
        var shapes = new Dictionary<string, long[]>();
        foreach (var (name, cin, cout, kh, kw) in Convolutions())
        {
            shapes[$"{name}.conv.weight"] = [cout, cin, kh, kw];
            foreach (var p in new[] { "weight", "bias", "running_mean", "running_var" }) shapes[$"{name}.bn.{p}"] = [cout];
        }
        return shapes;
    }

    /// <summary>A pytorch-fid-style state dict with random values that keep activations in a sane range, plus its 1008-way fc.</summary>
    static Dictionary<string, Tensor> RandomWeights(int seed)
    {
        manual_seed(seed);
        var tensors = new Dictionary<string, Tensor>();
        foreach (var (key, shape) in ExpectedShapes())
        {
            tensors[key] = key.EndsWith(".conv.weight")
                ? randn(shape) * Math.Sqrt(2.0 / (shape[1] * shape[2] * shape[3]))
                : key.EndsWith(".bn.weight") || key.EndsWith(".running_var") ? rand(shape) + 0.5
                : randn(shape) * 0.1;
        }
        tensors["fc.weight"] = randn(1008, 2048) * 0.02;
        tensors["fc.bias"] = zeros(1008);
        return tensors;
    }

    [Fact]
    public void StateDictIsTorchvisionInceptionWithoutAuxLogitsAndFc()
    {
        using var scope = NewDisposeScope();
        using var network = new FidInceptionV3();
        var state = network.state_dict().Where(p => !p.Key.EndsWith(".num_batches_tracked")).ToDictionary(p => p.Key, p => p.Value.shape);
        var expected = ExpectedShapes();
        Assert.Equal(94, Convolutions().Count);
        Assert.Equal(expected.Keys.OrderBy(k => k, StringComparer.Ordinal), state.Keys.OrderBy(k => k, StringComparer.Ordinal));
        foreach (var (key, shape) in expected) Assert.True(shape.SequenceEqual(state[key]), key);

        // Parameter counts: 21,785,568 in the feature network; pytorch-fid's file adds the 1008-way fc (23,850,960);
        // torchvision's inception_v3 with AuxLogits and a 1000-way fc has 27,161,264 (its documented num_params).
        long parameters = network.parameters().Sum(p => p.numel());
        Assert.Equal(21_785_568, parameters);
        Assert.Equal(23_850_960, parameters + 2048 * 1008 + 1008);
        long aux = (768 * 128 + 2 * 128) + (128 * 768 * 25 + 2 * 768) + (768 * 1000 + 1000);
        Assert.Equal(27_161_264, parameters + aux + 2048 * 1000 + 1000);
        Assert.All(network.modules().OfType<TorchSharp.Modules.Conv2d>(), conv => Assert.Null(conv.bias));
    }

    [Fact]
    public void BatchNormUsesRunningStatisticsWithEpsilonOneThousandth()
    {
        using var scope = NewDisposeScope();
        using var block = new FidInceptionV3.BasicConv2d(1, 1, (1, 1));
        var state = block.state_dict();
        using (no_grad())
        {
            state["conv.weight"].fill_(1);
            state["bn.weight"].fill_(2);
            state["bn.bias"].fill_(0.1);
            state["bn.running_mean"].fill_(0.5);
            state["bn.running_var"].fill_(0.25);
        }
        block.eval();
        var x = tensor(new float[] { 1.5f, 0.0f, 2.0f }).reshape(3, 1, 1, 1);
        var y = block.call(x).flatten();
        double Expected(double v) => Math.Max(0, 2 * (v - 0.5) / Math.Sqrt(0.25 + 0.001) + 0.1);
        Assert.Equal(Expected(1.5), y[0].item<float>(), 4);
        Assert.Equal(0, y[1].item<float>());
        Assert.Equal(Expected(2.0), y[2].item<float>(), 4);
    }

    [Fact]
    public void LoadsRandomWeightsFromSafetensorsAndGives2048Features()
    {
        using var dir = new TempDir();
        using var scope = NewDisposeScope();
        string path = Path.Combine(dir.Path, "inception.safetensors");
        var weights = RandomWeights(1);
        Safetensors.Save(path, weights);

        using var network = FeatureNetworks.Load(path);
        var inception = Assert.IsType<FidInceptionV3>(network);
        Assert.True(network.IsFidInception);
        Assert.Equal("Inception-v3 (pytorch-fid)", network.Name);
        Assert.Equal(0, network.ClassCount);
        Assert.True(inception.state_dict()["Mixed_7c.branch_pool.bn.running_var"].allclose(weights["Mixed_7c.branch_pool.bn.running_var"], rtol: 0, atol: 0));
        Assert.False(inception.training);

        // Two grey 28×28 images in [-1, 1]: repeated to RGB and resized to 299×299 inside.
        var images = rand(2, 1, 28, 28) * 2 - 1;
        var (features, logits) = network.Embed(images);
        Assert.Null(logits);
        Assert.Equal(new long[] { 2, 2048 }, features.shape);
        Assert.True(features.isfinite().all().item<bool>());
        Assert.True(features.ge(0).all().item<bool>(), "pool3 features average ReLU outputs");
        Assert.False(features[0].allclose(features[1]), "different images give different features");
        // Evaluation mode: an image's features do not depend on the rest of its batch (batch statistics would).
        var alone = network.Features(images.narrow(0, 1, 1));
        Assert.True(alone[0].allclose(features[1], rtol: 1e-4, atol: 1e-5));
    }

    [Fact]
    public void AnIncompleteFileNamesEveryProblemAndHowToConvert()
    {
        using var dir = new TempDir();
        using var scope = NewDisposeScope();
        string path = Path.Combine(dir.Path, "broken.safetensors");
        var weights = RandomWeights(2).ToDictionary(p => p.Key, p => p.Value.to(ScalarType.Float16));
        weights.Remove("Mixed_6b.branch7x7_2.conv.weight");
        weights["Mixed_7c.branch_pool.bn.running_var"] = zeros(new long[] { 191 }, ScalarType.Float16);
        weights["AuxLogits.fc.weight"] = zeros(new long[] { 1000, 768 }, ScalarType.Float16);
        Safetensors.Save(path, weights);

        var error = Assert.Throws<DiffuseException>(() => FeatureNetworks.Load(path));
        Assert.Contains("'Mixed_6b.branch7x7_2.conv.weight'", error.Message);
        Assert.Contains("'Mixed_7c.branch_pool.bn.running_var': file has [191], Inception-v3 has [192]", error.Message);
        Assert.Contains("AuxLogits", error.Message);
        Assert.Contains(FeatureNetworks.FidWeightsFile, error.Message);
        Assert.Contains("docs/metrics.md", error.Message);
    }

    [Fact]
    public void AFileOfNeitherKindIsRejectedWithAHint()
    {
        using var dir = new TempDir();
        using var scope = NewDisposeScope();
        string path = Path.Combine(dir.Path, "other.safetensors");
        Safetensors.Save(path, new Dictionary<string, Tensor> { ["layer.weight"] = zeros(2, 2) });
        var error = Assert.Throws<DiffuseException>(() => FeatureNetworks.Load(path));
        Assert.Contains("neither a Diffuse feature classifier", error.Message);
        Assert.Contains("docs/metrics.md", error.Message);
    }

    [Fact]
    public void KeysOfPytorchFidsWrapperMapToTorchvisionNames()
    {
        Assert.Equal("Conv2d_1a_3x3.conv.weight", FeatureNetworks.NormaliseInceptionKey("blocks.0.0.conv.weight"));
        Assert.Equal("Conv2d_4a_3x3.bn.running_var", FeatureNetworks.NormaliseInceptionKey("blocks.1.1.bn.running_var"));
        Assert.Equal("Mixed_5b.branch1x1.conv.weight", FeatureNetworks.NormaliseInceptionKey("blocks.2.0.branch1x1.conv.weight"));
        Assert.Equal("Mixed_7c.branch_pool.bn.bias", FeatureNetworks.NormaliseInceptionKey("blocks.3.2.branch_pool.bn.bias"));
        Assert.Equal("Mixed_5b.branch1x1.conv.weight", FeatureNetworks.NormaliseInceptionKey("Mixed_5b.branch1x1.conv.weight"));
    }
}
