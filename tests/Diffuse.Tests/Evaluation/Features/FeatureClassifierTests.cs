using Diffuse.Evaluation.Features;
using Diffuse.Evaluation.SampleQuality;
using Diffuse.Tests.Training;
using static TorchSharp.torch;

namespace Diffuse.Tests.Evaluation.Features;

public class FeatureClassifierTests
{
    [Fact]
    public void LearnsASimpleTaskAndRoundTripsThroughSafetensors()
    {
        using var dir = new TempDir();
        using var scope = NewDisposeScope();
        manual_seed(0);
        // Class 0: a bright horizontal bar; class 1: a bright vertical bar; random positions, noisy background.
        const int n = 512;
        var images = zeros(n, 1, 12, 12, dtype: ScalarType.Byte);
        var labels = new long[n];
        var rng = new Random(1);
        for (int i = 0; i < n; i++)
        {
            labels[i] = i % 2;
            int p = rng.Next(1, 11);
            if (labels[i] == 0) images[i, 0, p].fill_(255); else images[i, 0, TensorIndex.Colon, p].fill_(255);
        }
        var labelTensor = tensor(labels);
        var classifier = new FeatureClassifier(new FeatureClassifierConfig(1, 12, 12, 2, Features: 16));
        Tensor ToRange(Tensor b) => b.to_type(ScalarType.Float32) / 127.5f - 1;
        classifier.Train(images, labelTensor, ToRange, epochs: 4, batchSize: 64, learningRate: 3e-3, seed: 0);
        var (features, logits) = classifier.Embed(ToRange(images));
        Assert.Equal(new long[] { n, 16 }, features.shape);
        Assert.True(FeatureMetrics.Accuracy(logits, labelTensor) > 0.95);

        string path = Path.Combine(dir.Path, "classifier.safetensors");
        classifier.Save(path);
        var loaded = FeatureClassifier.Load(path);
        var (featuresAgain, _) = loaded.Embed(ToRange(images));
        Assert.True(features.allclose(featuresAgain));
        Assert.Throws<DiffuseException>(() => FeatureClassifier.Load(Path.Combine(dir.Path, "missing.safetensors")));
    }

    static string RepositoryFile(params string[] parts)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Diffuse.slnx"))) return Path.Combine([dir.FullName, .. parts]);
        throw new InvalidOperationException("the repository root (Diffuse.slnx) is not above the test binaries.");
    }

    [Theory]
    [InlineData("fashion-mnist", "Diffuse Fashion-MNIST features")]
    [InlineData("mnist", "Diffuse MNIST features")]
    public void TheCommittedClassifiersLoadAsImageFeatureNetworks(string dataset, string name)
    {
        using var scope = NewDisposeScope();
        using var network = FeatureNetworks.Load(RepositoryFile("models", "classifiers", dataset + ".safetensors"));
        var classifier = Assert.IsType<FeatureClassifier>(network);
        Assert.Equal(dataset, classifier.Dataset);
        Assert.Equal(name, network.Name);
        Assert.False(network.IsFidInception);
        Assert.Equal((1, 28, 28, 128, 10), (network.InputChannels, network.InputHeight, network.InputWidth, network.FeatureCount, network.ClassCount));

        var (features, logits) = network.Embed(zeros(8, 1, 28, 28));
        Assert.Equal(new long[] { 8, 128 }, features.shape);
        Assert.Equal(new long[] { 8, 10 }, logits!.shape);
        // uint8 pixels are mapped to [-1, 1]: byte 127.5 does not exist, but 0 maps to -1 exactly.
        Assert.True(network.Features(zeros(8, 1, 28, 28, dtype: ScalarType.Byte)).allclose(network.Features(full(8, 1, 28, 28, -1f))));
        // Another size is resized bilinearly: a constant image stays the same constant.
        Assert.True(network.Features(zeros(2, 1, 32, 32)).allclose(features.narrow(0, 0, 2), atol: 1e-6));
        Assert.Throws<DiffuseException>(() => network.Features(zeros(2, 3, 28, 28)));
    }

    [Fact]
    public void SaveStoresTheDatasetName()
    {
        using var dir = new TempDir();
        using var scope = NewDisposeScope();
        string path = Path.Combine(dir.Path, "c.safetensors");
        using (var classifier = new FeatureClassifier(new FeatureClassifierConfig(3, 8, 8, 4, Features: 8)) { Dataset = "cifar10" })
            classifier.Save(path);
        using var loaded = FeatureClassifier.Load(path);
        Assert.Equal("Diffuse CIFAR-10 features", loaded.Name);
        // A grey image is repeated to the network's three channels.
        Assert.True(loaded.Features(full(1, 1, 8, 8, 0.5f)).allclose(loaded.Features(full(1, 3, 8, 8, 0.5f))));
    }
}
